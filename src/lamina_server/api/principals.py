"""Agents and roles of an organization, and their API keys.

No ``from __future__ import annotations`` here: the key routes of agents and of roles are made
by one function, and FastAPI reads their annotations (which name its locals) when registered.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action
from lamina_server.api.errors import bad_request
from lamina_server.api.pagination import envelope
from lamina_server.api.params import ORG, Pages, ServicesDep
from lamina_server.api.schemas import (
    SLUG_PATTERN,
    Metadata,
    PaginationBody,
    error_responses,
    rfc3339,
)
from lamina_server.authz import Action
from lamina_server.authz.policy import validate
from lamina_server.identity import KeyRecord, MachineRecord, NewKey
from lamina_server.secrets import SecretScope

router = APIRouter(route_class=LaminaRoute)

AGENT = f"{ORG}/agents/{{agent_name}}"
ROLE = f"{ORG}/roles/{{role_name}}"
AgentName = Annotated[str, Path(description="Agent name")]
RoleName = Annotated[str, Path(description="Role name")]
KeyId = Annotated[str, Path(description="API key ID")]


# --- wire shapes ------------------------------------------------------------------------------


class CreateAgentRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=SLUG_PATTERN)
    description: str = Field("", max_length=4096)
    metadata: Metadata | None = None
    inline_policy: str = Field("", max_length=65536)


class UpdateAgentRequest(BaseModel):
    """Only the fields sent change; an empty ``inline_policy`` clears it."""

    model_config = ConfigDict(extra="ignore")
    description: str | None = Field(None, max_length=4096)
    metadata: Metadata | None = None
    inline_policy: str | None = Field(None, max_length=65536)


class CreateRoleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=SLUG_PATTERN)
    description: str = Field("", max_length=4096)


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=256)
    description: str = Field("", max_length=256)


class Role(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    created_by_type: str
    created_by: str
    created_by_name: str
    created_at: datetime
    last_used_at: datetime | None


class Agent(Role):
    metadata: dict[str, str]
    inline_policy: str
    inline_policy_updated_at: datetime | None


class AgentList(BaseModel):
    results: list[Agent]
    pagination: PaginationBody


class RoleList(BaseModel):
    results: list[Role]
    pagination: PaginationBody


class APIToken(BaseModel):
    id: str
    name: str
    description: str
    token_hint: str = Field(description="The token's last 4 characters")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class APITokenList(BaseModel):
    results: list[APIToken]
    pagination: PaginationBody


class APITokenCreated(BaseModel):
    token: str = Field(description="The full token, shown only in this response")
    id: str
    name: str
    description: str


def check_inline_policy(text: str | None) -> None:
    """400 naming the line and column of every error (at most five) of a policy's text."""
    if not text:
        return
    errors = validate(text)
    if errors:
        problems = "; ".join(str(error) for error in errors[:5])
        raise bad_request(f"inline_policy: {problems}", "invalid_policy")


def _moment(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def machine_json(record: MachineRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "organization_id": record.organization_id,
        "name": record.name,
        "description": record.description,
        "created_by_type": record.created_by_type,
        "created_by": record.created_by,
        "created_by_name": record.created_by_name,
        "created_at": rfc3339(record.created_at),
        "last_used_at": _moment(record.last_used_at),
    }
    if record.kind == "agent":
        body["metadata"] = record.metadata
        body["inline_policy"] = record.inline_policy
        body["inline_policy_updated_at"] = _moment(record.inline_policy_updated_at)
    return body


def key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "token_hint": record.token_hint,
        "created_at": rfc3339(record.created_at),
        "last_used_at": _moment(record.last_used_at),
        "revoked_at": _moment(record.revoked_at),
    }


def new_key_json(key: NewKey) -> dict[str, Any]:
    return {
        "token": key.token,
        "id": key.record.id,
        "name": key.record.name,
        "description": key.record.description,
    }


# --- agents -----------------------------------------------------------------------------------


@router.get(
    f"{ORG}/agents",
    tags=["Agents"],
    summary="List the organization's agents (by name)",
    responses={200: {"model": AgentList}, **error_responses(400, 404)},
    dependencies=[organization_action(Action.MANAGE_AGENTS)],
)
async def list_agents(services: ServicesDep, access: AccessDep, pages: Pages) -> JSONResponse:
    page = await services.identity.machines.list("agent", access.org.id, pages.after, pages.amount)
    results = [machine_json(record) for record in page.records]
    return JSONResponse(
        envelope(results, has_more=page.has_more, next_offset=page.next_offset, amount=pages.amount)
    )


@router.post(
    f"{ORG}/agents",
    tags=["Agents"],
    status_code=201,
    summary="Create an agent",
    responses={201: {"model": Agent}, **error_responses(400, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_AGENTS)],
)
async def create_agent(
    body: CreateAgentRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    check_inline_policy(body.inline_policy)
    record = await services.identity.machines.create(
        "agent",
        access.org.id,
        body.name,
        access.caller,
        description=body.description,
        metadata=body.metadata,
        inline_policy=body.inline_policy,
    )
    return JSONResponse(machine_json(record), status_code=201)


@router.get(
    AGENT,
    tags=["Agents"],
    summary="Get an agent",
    responses={200: {"model": Agent}, **error_responses(404)},
    dependencies=[organization_action(Action.MANAGE_AGENTS)],
)
async def get_agent(
    agent_name: AgentName, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.identity.machines.get("agent", access.org.id, agent_name)
    return JSONResponse(machine_json(record))


@router.put(
    AGENT,
    tags=["Agents"],
    summary="Update an agent's description, metadata or inline policy",
    responses={200: {"model": Agent}, **error_responses(400, 404)},
    dependencies=[organization_action(Action.MANAGE_AGENTS)],
)
async def update_agent(
    agent_name: AgentName, body: UpdateAgentRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    check_inline_policy(body.inline_policy)
    record = await services.identity.machines.update_agent(
        access.org.id,
        agent_name,
        description=body.description,
        metadata=body.metadata,
        inline_policy=body.inline_policy,
    )
    return JSONResponse(machine_json(record))


@router.delete(
    AGENT,
    tags=["Agents"],
    status_code=204,
    summary="Delete an agent (revokes all its API keys)",
    responses=error_responses(404),
    dependencies=[organization_action(Action.MANAGE_AGENTS)],
)
async def delete_agent(agent_name: AgentName, services: ServicesDep, access: AccessDep) -> Response:
    agent = await services.identity.machines.get("agent", access.org.id, agent_name)
    await services.identity.machines.delete("agent", access.org.id, agent_name)
    await services.secrets.purge(SecretScope.agent(agent.id))
    return Response(status_code=204)


# --- roles ------------------------------------------------------------------------------------


@router.get(
    f"{ORG}/roles",
    tags=["Roles"],
    summary="List the organization's roles (by name)",
    responses={200: {"model": RoleList}, **error_responses(400, 404)},
    dependencies=[organization_action(Action.MANAGE_ROLES)],
)
async def list_roles(services: ServicesDep, access: AccessDep, pages: Pages) -> JSONResponse:
    page = await services.identity.machines.list("role", access.org.id, pages.after, pages.amount)
    results = [machine_json(record) for record in page.records]
    return JSONResponse(
        envelope(results, has_more=page.has_more, next_offset=page.next_offset, amount=pages.amount)
    )


@router.post(
    f"{ORG}/roles",
    tags=["Roles"],
    status_code=201,
    summary="Create a role",
    responses={201: {"model": Role}, **error_responses(400, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_ROLES)],
)
async def create_role(
    body: CreateRoleRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.identity.machines.create(
        "role", access.org.id, body.name, access.caller, description=body.description
    )
    return JSONResponse(machine_json(record), status_code=201)


@router.get(
    ROLE,
    tags=["Roles"],
    summary="Get a role",
    responses={200: {"model": Role}, **error_responses(404)},
    dependencies=[organization_action(Action.MANAGE_ROLES)],
)
async def get_role(role_name: RoleName, services: ServicesDep, access: AccessDep) -> JSONResponse:
    record = await services.identity.machines.get("role", access.org.id, role_name)
    return JSONResponse(machine_json(record))


@router.delete(
    ROLE,
    tags=["Roles"],
    status_code=204,
    summary="Delete a role (revokes all its API keys)",
    responses=error_responses(404),
    dependencies=[organization_action(Action.MANAGE_ROLES)],
)
async def delete_role(role_name: RoleName, services: ServicesDep, access: AccessDep) -> Response:
    await services.identity.machines.delete("role", access.org.id, role_name)
    return Response(status_code=204)


# --- their API keys ---------------------------------------------------------------------------


def _key_routes(kind: str, base: str, tag: str, owner_param: str) -> None:
    """The four key routes of agents or roles (``base`` names the owner by ``owner_param``)."""
    keys = f"{base}/auth/keys"
    action = [organization_action(Action.MANAGE_API_KEYS)]
    owner_path = Annotated[str, Path(alias=owner_param, description=f"{tag[:-1]} name")]

    @router.get(
        keys,
        tags=[tag],
        summary=f"List a {kind}'s API keys (never the tokens)",
        responses={200: {"model": APITokenList}, **error_responses(400, 404)},
        dependencies=action,
        name=f"list_{kind}_api_keys",
    )
    async def list_keys(
        owner_name: owner_path, services: ServicesDep, access: AccessDep, pages: Pages
    ) -> JSONResponse:
        machines = services.identity.machines
        owner = await machines.owner(kind, access.org.id, owner_name)
        page = await machines.list_keys(owner, pages.after, pages.amount)
        results = [key_json(record) for record in page.records]
        return JSONResponse(
            envelope(
                results, has_more=page.has_more, next_offset=page.next_offset, amount=pages.amount
            )
        )

    @router.post(
        keys,
        tags=[tag],
        status_code=201,
        summary=f"Create an API key for a {kind} (the token is shown only in this response)",
        responses={201: {"model": APITokenCreated}, **error_responses(400, 404)},
        dependencies=action,
        name=f"create_{kind}_api_key",
    )
    async def create_key(
        owner_name: owner_path, body: CreateKeyRequest, services: ServicesDep, access: AccessDep
    ) -> JSONResponse:
        machines = services.identity.machines
        owner = await machines.owner(kind, access.org.id, owner_name)
        key = await machines.create_key(owner, body.name, body.description)
        return JSONResponse(new_key_json(key), status_code=201)

    @router.get(
        f"{keys}/{{key_id}}",
        tags=[tag],
        summary=f"Get one of a {kind}'s API keys (never the token)",
        responses={200: {"model": APIToken}, **error_responses(404)},
        dependencies=action,
        name=f"get_{kind}_api_key",
    )
    async def get_key(
        owner_name: owner_path, key_id: KeyId, services: ServicesDep, access: AccessDep
    ) -> JSONResponse:
        machines = services.identity.machines
        owner = await machines.owner(kind, access.org.id, owner_name)
        return JSONResponse(key_json(await machines.get_key(owner, key_id)))

    @router.delete(
        f"{keys}/{{key_id}}",
        tags=[tag],
        status_code=204,
        summary=f"Revoke one of a {kind}'s API keys (effective on the next request)",
        responses=error_responses(404),
        dependencies=action,
        name=f"revoke_{kind}_api_key",
    )
    async def revoke_key(
        owner_name: owner_path, key_id: KeyId, services: ServicesDep, access: AccessDep
    ) -> Response:
        machines = services.identity.machines
        owner = await machines.owner(kind, access.org.id, owner_name)
        await machines.revoke_key(owner, key_id)
        return Response(status_code=204)


_key_routes("agent", AGENT, "Agents", "agent_name")
_key_routes("role", ROLE, "Roles", "role_name")
