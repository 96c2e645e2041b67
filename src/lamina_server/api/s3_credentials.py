"""The caller's S3 credentials, for the S3-compatible gateway (:mod:`lamina_server.gateway`):
make one (its secret shown only in that response), list them (never a secret), revoke one.

Any principal — a user, an agent or a role — manages its own, and a credential acts as it,
with its rights at the time of each request. A revoked credential is refused from the next
request on, on every server process and replica.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lamina_server.api.access import AccessDep, LaminaRoute, account_action
from lamina_server.api.params import ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.gateway.credentials import CredentialRecord

router = APIRouter(tags=["Auth"], route_class=LaminaRoute)

CREDENTIALS = "/auth/s3-credentials"
AccessKeyId = Annotated[str, Path(description="The credential's access key id")]
# The secret must never be kept by a cache along the way.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class S3CredentialCreated(BaseModel):
    access_key_id: str
    secret_access_key: str = Field(description="The secret, shown only in this response")
    created_at: datetime


class S3Credential(BaseModel):
    access_key_id: str
    created_at: datetime
    revoked_at: datetime | None


class S3CredentialList(BaseModel):
    results: list[S3Credential]


def credential_json(record: CredentialRecord) -> dict[str, str | None]:
    return {
        "access_key_id": record.access_key_id,
        "created_at": rfc3339(record.created_at),
        "revoked_at": rfc3339(record.revoked_at) if record.revoked_at else None,
    }


@router.post(
    CREDENTIALS,
    status_code=201,
    summary="Create an S3 credential acting as the caller (the secret is shown only here)",
    responses={201: {"model": S3CredentialCreated}, **error_responses()},
    dependencies=[account_action(Action.MANAGE_S3_CREDENTIALS)],
)
async def create_s3_credential(services: ServicesDep, access: AccessDep) -> JSONResponse:
    created = await services.s3_credentials.create(access.caller)
    return JSONResponse(
        {
            "access_key_id": created.access_key_id,
            "secret_access_key": created.secret_access_key,
            "created_at": rfc3339(created.created_at),
        },
        status_code=201,
        headers=NO_STORE,
    )


@router.get(
    CREDENTIALS,
    summary="List the caller's S3 credentials, revoked ones included (never a secret)",
    responses={200: {"model": S3CredentialList}, **error_responses()},
    dependencies=[account_action(Action.MANAGE_S3_CREDENTIALS)],
)
async def list_s3_credentials(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.s3_credentials.list(access.caller)
    return JSONResponse({"results": [credential_json(record) for record in records]})


@router.delete(
    f"{CREDENTIALS}/{{access_key_id}}",
    status_code=204,
    summary="Revoke one of the caller's S3 credentials (refused from the next request on)",
    responses=error_responses(404),
    dependencies=[account_action(Action.MANAGE_S3_CREDENTIALS)],
)
async def revoke_s3_credential(
    access_key_id: AccessKeyId, services: ServicesDep, access: AccessDep
) -> Response:
    await services.s3_credentials.revoke(access.caller, access_key_id)
    return Response(status_code=204)
