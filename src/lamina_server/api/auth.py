"""The caller: who it is (``/auth/me``), whether it may perform an action (``/auth/permission``),
and, for a user, its own API keys (``/auth/keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lamina_server.api.access import AccessDep, LaminaRoute, account_action
from lamina_server.api.errors import bad_request, not_found
from lamina_server.api.pagination import envelope
from lamina_server.api.params import Pages, ServicesDep
from lamina_server.api.principals import (
    APITokenCreated,
    APITokenList,
    CreateKeyRequest,
    KeyId,
    key_json,
    new_key_json,
)
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action, Resource
from lamina_server.identity import OrganizationNotFound

router = APIRouter(tags=["Auth"], route_class=LaminaRoute)


class User(BaseModel):
    id: str
    username: str
    email: str
    full_name: str
    source: str
    status: str
    created_at: datetime


class OrgSummary(BaseModel):
    id: str
    name: str
    display_name: str


class CallerPrincipal(BaseModel):
    type: str = Field(description="user, agent or role")
    id: str
    name: str
    organization_id: str | None = Field(description="An agent's or role's organization")


class Me(BaseModel):
    user: User | None = Field(description="The calling user; null for an agent or a role")
    organizations: list[OrgSummary]
    has_password: bool = Field(description="Always false: Lamina authenticates by API key")
    principal: CallerPrincipal = Field(description="Lamina: the caller, of any principal type")


class Permission(BaseModel):
    allowed: bool
    action: str
    resource: str
    reason: str = Field(
        description="What decided it: the deciding policy line, or that none allows it"
    )


@router.get(
    "/auth/permission",
    summary="May the caller perform an action on a resource? Answered by the server's own "
    "authorizer, nothing tried (a Lamina extension)",
    responses={200: {"model": Permission}, **error_responses(400, 404)},
    dependencies=[account_action(Action.LIST_ORGANIZATIONS)],
)
async def get_permission(
    services: ServicesDep,
    access: AccessDep,
    action: Annotated[str, Query(description="A policy action, e.g. PutObject")],
    resource: Annotated[str, Query(description="org, org/repo or org/repo/path")],
) -> JSONResponse:
    try:
        wanted = Action(action)
    except ValueError:
        raise bad_request(f"action: no action is named {action!r}") from None
    org_name, _, rest = resource.partition("/")
    repository, _, path = rest.partition("/")
    if not org_name or (rest and not repository):
        raise bad_request(f"resource: expected org, org/repo or org/repo/path, got {resource!r}")
    unknown = not_found(f"organization {org_name!r} not found", "organization_not_found")
    try:
        org = await services.identity.organization(org_name)
    except OrganizationNotFound:
        raise unknown from None
    target = Resource(org, repository or None, path or None)
    decision = await services.authorizer.authorize(access.caller, wanted, target)
    if decision.conceal:  # a non-member learns nothing of the organization
        raise unknown
    return JSONResponse(
        {
            "allowed": decision.allowed,
            "action": wanted.value,
            "resource": str(target),
            "reason": decision.reason,
        }
    )


@router.get(
    "/auth/me",
    summary="The caller (a user, an agent or a role) and its organizations",
    responses={200: {"model": Me}, **error_responses()},
    dependencies=[account_action(Action.LIST_ORGANIZATIONS)],
)
async def get_me(services: ServicesDep, access: AccessDep) -> JSONResponse:
    caller = access.caller
    user: dict[str, Any] | None = None
    if caller.type == "user":
        record = await services.identity.user(caller.id)
        user = {
            "id": record.id,
            "username": record.username,
            "email": record.email,
            "full_name": record.full_name,
            "source": "local",
            "status": "active",
            "created_at": rfc3339(record.created_at),
        }
    orgs = await services.identity.list_organizations(caller)
    return JSONResponse(
        {
            "user": user,
            "organizations": [
                {"id": org.id, "name": org.name, "display_name": org.display_name} for org in orgs
            ],
            "has_password": False,
            "principal": {
                "type": caller.type,
                "id": caller.id,
                "name": caller.name,
                "organization_id": caller.organization_id,
            },
        }
    )


@router.get(
    "/auth/keys",
    summary="List the calling user's API keys (never the tokens)",
    responses={200: {"model": APITokenList}, **error_responses(400)},
    dependencies=[account_action(Action.MANAGE_API_KEYS)],
)
async def list_user_api_keys(
    services: ServicesDep, access: AccessDep, pages: Pages
) -> JSONResponse:
    page = await services.identity.machines.list_keys(access.caller, pages.after, pages.amount)
    results = [{**key_json(record), "user_id": access.caller.id} for record in page.records]
    return JSONResponse(
        envelope(results, has_more=page.has_more, next_offset=page.next_offset, amount=pages.amount)
    )


@router.post(
    "/auth/keys",
    status_code=201,
    summary="Create an API key for the calling user (the token is shown only in this response)",
    responses={201: {"model": APITokenCreated}, **error_responses(400)},
    dependencies=[account_action(Action.MANAGE_API_KEYS)],
)
async def create_user_api_key(
    body: CreateKeyRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    key = await services.identity.machines.create_key(access.caller, body.name, body.description)
    return JSONResponse(new_key_json(key), status_code=201)


@router.delete(
    "/auth/keys/{key_id}",
    status_code=204,
    summary="Revoke one of the calling user's API keys (effective on the next request)",
    responses=error_responses(404),
    dependencies=[account_action(Action.MANAGE_API_KEYS)],
)
async def revoke_user_api_key(key_id: KeyId, services: ServicesDep, access: AccessDep) -> Response:
    await services.identity.machines.revoke_key(access.caller, key_id)
    return Response(status_code=204)
