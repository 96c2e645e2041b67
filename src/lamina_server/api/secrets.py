"""Secrets of a repository: list (never values), put (create or update), get (the value,
``Cache-Control: no-store``), delete. A request body is at most 64 KiB (413 past that)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.params import REPO, ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.secrets import KEY_PATTERN, SecretEntry, SecretScope

router = APIRouter(tags=["Secrets"], route_class=LaminaRoute)

MAX_SECRET_BODY = 64 * 1024
SECRETS = f"{REPO}/secrets"
SECRET = f"{SECRETS}/{{secret_key}}"
SecretKey = Annotated[
    str,
    Path(
        description="Secret key name (also the environment variable's name in a sandbox)",
        json_schema_extra={"pattern": KEY_PATTERN},
    ),
]
# A secret's value must never be kept by a cache along the way.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class PutSecretRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: str = Field(
        min_length=1,
        description="The secret value (UTF-8, no NUL). The whole request body is at most 64 KiB.",
    )


class SecretKeyBody(BaseModel):
    key: str


class SecretListEntry(BaseModel):
    key: str
    created_by_type: Literal["user", "role", "agent"]
    created_by: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    results: list[SecretListEntry]


class SecretValueResponse(BaseModel):
    key: str
    value: str


def entry_json(entry: SecretEntry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "created_by_type": entry.created_by_type,
        "created_by": entry.created_by,
        "created_at": rfc3339(entry.created_at),
        "updated_at": rfc3339(entry.updated_at),
    }


_VALUE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SecretValueResponse,
        "headers": {
            "Cache-Control": {"schema": {"type": "string", "example": "no-store"}},
            "Pragma": {"schema": {"type": "string", "example": "no-cache"}},
        },
    }
}


@router.get(
    SECRETS,
    summary="List repository secrets (keys and metadata, never values)",
    responses={200: {"model": SecretList}, **error_responses(404)},
    dependencies=[repository_action(Action.MANAGE_SECRETS)],
)
async def list_secrets(services: ServicesDep, access: AccessDep) -> JSONResponse:
    entries = await services.secrets.list(SecretScope.repository(access.repo.id))
    return JSONResponse({"results": [entry_json(entry) for entry in entries]})


@router.put(
    SECRET,
    summary="Create or update a repository secret",
    responses={200: {"model": SecretKeyBody}, **error_responses(400, 404, 413)},
    dependencies=[repository_action(Action.MANAGE_SECRETS, body_limit=MAX_SECRET_BODY)],
)
async def put_secret(
    secret_key: SecretKey, body: PutSecretRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    scope = SecretScope.repository(access.repo.id)
    await services.secrets.put(scope, secret_key, body.value, author=access.caller)
    return JSONResponse({"key": secret_key})


@router.get(
    SECRET,
    summary="Get a repository secret's decrypted value",
    responses={**_VALUE_RESPONSE, **error_responses(400, 404, 500)},
    dependencies=[repository_action(Action.GET_SECRET)],
)
async def get_secret(
    secret_key: SecretKey, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    value = await services.secrets.get(SecretScope.repository(access.repo.id), secret_key)
    return JSONResponse({"key": secret_key, "value": value}, headers=NO_STORE)


@router.delete(
    SECRET,
    status_code=204,
    summary="Delete a repository secret",
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.MANAGE_SECRETS)],
)
async def delete_secret(
    secret_key: SecretKey, services: ServicesDep, access: AccessDep
) -> Response:
    await services.secrets.delete(SecretScope.repository(access.repo.id), secret_key)
    return Response(status_code=204)
