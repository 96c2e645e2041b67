"""Secrets of a repository or of an agent: list (never values), put (create or update), get
(the value, ``Cache-Control: no-store``), delete. A request body is at most 64 KiB (413 past
that). An agent's secrets reach the sandboxes that run as it (:mod:`lamina_server.secrets`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import (
    Access,
    AccessDep,
    LaminaRoute,
    organization_action,
    repository_action,
)
from lamina_server.api.deps import Services
from lamina_server.api.params import ORG, REPO, ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.secrets import KEY_PATTERN, SecretEntry, SecretScope

router = APIRouter(tags=["Secrets"], route_class=LaminaRoute)

MAX_SECRET_BODY = 64 * 1024
SECRETS = f"{REPO}/secrets"
SECRET = f"{SECRETS}/{{secret_key}}"
AGENT_SECRETS = f"{ORG}/agents/{{agent_name}}/secrets"
AGENT_SECRET = f"{AGENT_SECRETS}/{{secret_key}}"
AgentName = Annotated[str, Path(description="Agent name")]
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


async def _list(services: Services, scope: SecretScope) -> JSONResponse:
    entries = await services.secrets.list(scope)
    return JSONResponse({"results": [entry_json(entry) for entry in entries]})


async def _put(
    services: Services, scope: SecretScope, key: str, body: PutSecretRequest, access: Access
) -> JSONResponse:
    await services.secrets.put(scope, key, body.value, author=access.caller)
    return JSONResponse({"key": key})


async def _get(services: Services, scope: SecretScope, key: str) -> JSONResponse:
    value = await services.secrets.get(scope, key)
    return JSONResponse({"key": key, "value": value}, headers=NO_STORE)


async def _delete(services: Services, scope: SecretScope, key: str) -> Response:
    await services.secrets.delete(scope, key)
    return Response(status_code=204)


async def _agent(services: Services, access: Access, agent_name: str) -> SecretScope:
    agent = await services.identity.machines.get("agent", access.org.id, agent_name)
    return SecretScope.agent(agent.id)


# --- a repository's secrets -------------------------------------------------------------------


@router.get(
    SECRETS,
    summary="List repository secrets (keys and metadata, never values)",
    responses={200: {"model": SecretList}, **error_responses(404)},
    dependencies=[repository_action(Action.MANAGE_SECRETS)],
)
async def list_secrets(services: ServicesDep, access: AccessDep) -> JSONResponse:
    return await _list(services, SecretScope.repository(access.repo.id))


@router.put(
    SECRET,
    summary="Create or update a repository secret",
    responses={200: {"model": SecretKeyBody}, **error_responses(400, 404, 413)},
    dependencies=[repository_action(Action.MANAGE_SECRETS, body_limit=MAX_SECRET_BODY)],
)
async def put_secret(
    secret_key: SecretKey, body: PutSecretRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return await _put(services, SecretScope.repository(access.repo.id), secret_key, body, access)


@router.get(
    SECRET,
    summary="Get a repository secret's decrypted value",
    responses={**_VALUE_RESPONSE, **error_responses(400, 404, 500)},
    dependencies=[repository_action(Action.GET_SECRET)],
)
async def get_secret(
    secret_key: SecretKey, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return await _get(services, SecretScope.repository(access.repo.id), secret_key)


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
    return await _delete(services, SecretScope.repository(access.repo.id), secret_key)


# --- an agent's secrets -----------------------------------------------------------------------


@router.get(
    AGENT_SECRETS,
    summary="List an agent's secrets (keys and metadata, never values)",
    responses={200: {"model": SecretList}, **error_responses(404)},
    dependencies=[organization_action(Action.MANAGE_SECRETS)],
)
async def list_agent_secrets(
    agent_name: AgentName, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return await _list(services, await _agent(services, access, agent_name))


@router.put(
    AGENT_SECRET,
    summary="Create or update an agent's secret",
    responses={200: {"model": SecretKeyBody}, **error_responses(400, 404, 413)},
    dependencies=[organization_action(Action.MANAGE_SECRETS, body_limit=MAX_SECRET_BODY)],
)
async def put_agent_secret(
    agent_name: AgentName,
    secret_key: SecretKey,
    body: PutSecretRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    scope = await _agent(services, access, agent_name)
    return await _put(services, scope, secret_key, body, access)


@router.get(
    AGENT_SECRET,
    summary="Get an agent's secret's decrypted value",
    responses={**_VALUE_RESPONSE, **error_responses(400, 404, 500)},
    dependencies=[organization_action(Action.GET_SECRET)],
)
async def get_agent_secret(
    agent_name: AgentName, secret_key: SecretKey, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return await _get(services, await _agent(services, access, agent_name), secret_key)


@router.delete(
    AGENT_SECRET,
    status_code=204,
    summary="Delete an agent's secret",
    responses=error_responses(400, 404),
    dependencies=[organization_action(Action.MANAGE_SECRETS)],
)
async def delete_agent_secret(
    agent_name: AgentName, secret_key: SecretKey, services: ServicesDep, access: AccessDep
) -> Response:
    return await _delete(services, await _agent(services, access, agent_name), secret_key)
