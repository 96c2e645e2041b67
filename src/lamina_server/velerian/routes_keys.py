"""``/api/v2/api-keys``: a Lamina user mints, lists and revokes its Velerian keys.

These routes take a Lamina *user* key (``tuk-…``; an agent's or a role's is refused, as for
Lamina's own ``/auth/keys``), never a Velerian key. A key is minted for one organization of the
user (``organization``, or the user's only one), shown once, and acts as the user there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute
from lamina_server.api.params import ServicesDep
from lamina_server.api.schemas import rfc3339
from lamina_server.authz import Action
from lamina_server.velerian.access import On, retarget, velerian
from lamina_server.velerian.errors import Invalid, NotFound
from lamina_server.velerian.keys import SCOPES, KeyRecord

router = APIRouter(tags=["API keys"], route_class=LaminaRoute)

KeyId = Annotated[str, Path(description="API key id")]


class MintKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=256)
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES))
    organization: str | None = Field(
        None, description="The organization's slug (default: the caller's only organization)"
    )


class KeyBody(BaseModel):
    id: str
    name: str
    scopes: list[str]
    organization: str
    created_at: str
    revoked_at: str | None


class MintedKeyBody(KeyBody):
    key: str = Field(description="vk_live_…: shown only in this response")


class KeyList(BaseModel):
    items: list[KeyBody]


def _key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "scopes": list(record.scopes),
        "organization": record.organization,
        "created_at": rfc3339(record.created_at),
        "revoked_at": rfc3339(record.revoked_at) if record.revoked_at else None,
    }


@router.post(
    "/api-keys",
    status_code=201,
    summary="Mint a Velerian key (authenticated by a Lamina user key; the key is shown once)",
    response_model=MintedKeyBody,
    dependencies=[velerian(None, Action.MANAGE_API_KEYS, on=On.ACCOUNT, audit="api_key.create")],
)
async def mint_api_key(body: MintKeyBody, services: ServicesDep, access: AccessDep) -> JSONResponse:
    unknown = [scope for scope in body.scopes if scope not in SCOPES]
    if unknown:
        raise Invalid(f"scopes: unknown scope(s) {unknown}; known: {', '.join(SCOPES)}")
    organizations = await services.identity.list_organizations(access.caller)
    if body.organization is not None:
        chosen = [org for org in organizations if org.name == body.organization]
        if not chosen:
            raise NotFound(f"organization {body.organization!r} not found")
    elif len(organizations) != 1:
        names = ", ".join(org.name for org in organizations) or "none"
        raise Invalid(
            f"organization: required, since you are a member of {len(organizations)} "
            f"organizations ({names})"
        )
    else:
        chosen = organizations
    org = chosen[0]
    key_id = services.velerian.keys.new_id()
    retarget(organization_id=org.id, resource=org.name, resource_id=key_id)
    record, token = await services.velerian.keys.mint(
        key_id, access.caller, org.id, body.name, body.scopes
    )
    return JSONResponse({**_key_json(record), "key": token}, status_code=201)


@router.get(
    "/api-keys",
    summary="The calling user's Velerian keys, live and revoked (never the keys themselves)",
    response_model=KeyList,
    dependencies=[velerian(None, Action.MANAGE_API_KEYS, on=On.ACCOUNT)],
)
async def list_api_keys(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.velerian.keys.list(access.caller)
    return JSONResponse({"items": [_key_json(record) for record in records]})


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    summary="Revoke one of the calling user's Velerian keys (effective on the next request)",
    dependencies=[velerian(None, Action.MANAGE_API_KEYS, on=On.ACCOUNT, audit="api_key.revoke")],
)
async def revoke_api_key(key_id: KeyId, services: ServicesDep, access: AccessDep) -> Response:
    record = await services.velerian.keys.get(access.caller, key_id)
    if record is None or record.revoked_at is not None:
        raise NotFound(f"API key {key_id!r} not found (or already revoked)")
    retarget(organization_id=record.organization_id, resource=record.organization)
    await services.velerian.keys.revoke(access.caller, key_id)
    return Response(status_code=204)
