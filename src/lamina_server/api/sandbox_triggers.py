"""Sandbox triggers: create, list, get, replace (PUT), enable/disable (PATCH), delete, and
each trigger's runs. Firing is :mod:`lamina_server.sandboxes.dispatch`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.pagination import envelope
from lamina_server.api.params import REPO, Pages, ServicesDep
from lamina_server.api.schemas import PaginationBody, error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.sandboxes.triggers import (
    MAX_CONDITIONS,
    MAX_NAME_CHARS,
    TriggerRecord,
    TriggerRun,
    TriggerSpec,
)

router = APIRouter(tags=["Sandbox Triggers"], route_class=LaminaRoute)

TRIGGERS = f"{REPO}/sandbox-triggers"
TRIGGER = f"{TRIGGERS}/{{trigger_id}}"
TriggerId = Annotated[str, Path(description="Sandbox trigger ID")]


class SandboxTriggerCondition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["prefix", "path_exact"]
    prefix: str | None = Field(None, description="Prefix to match (for prefix type)")
    path: str | None = Field(None, description="Exact path to match (for path_exact type)")
    diff_type: Literal["any", "added", "removed", "changed", "modified"] = Field(
        "any", description='Which changes match; "modified" is read as "changed"'
    )


class SandboxTriggerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image: str = Field(min_length=1, description="Image to run the sandbox from")
    command: list[str] | None = None
    mountpoint: str | None = Field(None, description="Absolute path the repository is mounted at")
    path_prefix: str | None = None
    timeout_seconds: int | None = Field(None, ge=1)
    env_vars: dict[str, str] | None = None


class RunAs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["agent", "role"]
    id: str = Field(min_length=1)


class UpdateSandboxTriggerRequest(BaseModel):
    """A full replacement: what is left out takes its default."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=4096)
    conditions: list[SandboxTriggerCondition] = Field(min_length=1, max_length=MAX_CONDITIONS)
    sandbox_config: SandboxTriggerConfig
    run_as: RunAs | None = None

    def spec(self) -> TriggerSpec:
        return TriggerSpec(
            name=self.name,
            description=self.description,
            conditions=[condition.model_dump() for condition in self.conditions],
            sandbox_config=self.sandbox_config.model_dump(exclude_none=True),
            run_as=None if self.run_as is None else self.run_as.model_dump(),
        )


class CreateSandboxTriggerRequest(UpdateSandboxTriggerRequest):
    enabled: bool = Field(True, strict=True)


class PatchSandboxTriggerRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool = Field(strict=True)


class SandboxTrigger(BaseModel):
    id: str
    repository_id: str
    name: str
    description: str
    enabled: bool
    conditions: list[SandboxTriggerCondition]
    sandbox_config: SandboxTriggerConfig
    run_as: RunAs | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class SandboxTriggerList(BaseModel):
    results: list[SandboxTrigger]
    pagination: PaginationBody


class SandboxTriggerRun(BaseModel):
    id: str
    repository_id: str
    trigger_id: str
    commit_id: str
    status: Literal["pending", "created", "skipped", "failed"]
    reason: str = Field(
        description="self_triggered or max_depth for a skipped run; why, for a failed one"
    )
    sandbox_id: str | None
    matched_paths: list[str]
    created_at: datetime
    updated_at: datetime


class SandboxTriggerRunList(BaseModel):
    results: list[SandboxTriggerRun]
    pagination: PaginationBody


def trigger_json(trigger: TriggerRecord) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "repository_id": trigger.repository_id,
        "name": trigger.name,
        "description": trigger.description,
        "enabled": trigger.enabled,
        "conditions": trigger.conditions,
        "sandbox_config": trigger.sandbox_config,
        "run_as": trigger.run_as,
        "created_by": trigger.created_by,
        "created_at": rfc3339(trigger.created_at),
        "updated_at": rfc3339(trigger.updated_at),
    }


def run_json(run: TriggerRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "repository_id": run.repository_id,
        "trigger_id": run.trigger_id,
        "commit_id": run.commit_id,
        "status": run.status,
        "reason": run.reason,
        "sandbox_id": run.sandbox_id,
        "matched_paths": run.matched_paths,
        "created_at": rfc3339(run.created_at),
        "updated_at": rfc3339(run.updated_at),
    }


@router.post(
    TRIGGERS,
    status_code=201,
    summary="Create a sandbox trigger",
    responses={201: {"model": SandboxTrigger}, **error_responses(400, 404, 409)},
    dependencies=[repository_action(Action.MANAGE_SANDBOX_TRIGGERS)],
)
async def create_trigger(
    body: CreateSandboxTriggerRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    trigger = await services.triggers.create(
        access.repo.id, body.spec(), creator=access.caller, enabled=body.enabled
    )
    return JSONResponse(trigger_json(trigger), status_code=201)


@router.get(
    TRIGGERS,
    summary="List sandbox triggers (by name)",
    responses={200: {"model": SandboxTriggerList}, **error_responses(400, 404)},
    dependencies=[repository_action(Action.LIST_SANDBOXES)],
)
async def list_triggers(page: Pages, services: ServicesDep, access: AccessDep) -> JSONResponse:
    triggers, has_more = await services.triggers.list(
        access.repo.id, after=page.after, amount=page.amount
    )
    return JSONResponse(
        envelope(
            [trigger_json(trigger) for trigger in triggers],
            has_more=has_more,
            next_offset=triggers[-1].name if triggers else None,
            amount=page.amount,
        )
    )


@router.get(
    TRIGGER,
    summary="Get a sandbox trigger",
    responses={200: {"model": SandboxTrigger}, **error_responses(404)},
    dependencies=[repository_action(Action.LIST_SANDBOXES)],
)
async def get_trigger(
    trigger_id: TriggerId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return JSONResponse(trigger_json(await services.triggers.get(access.repo.id, trigger_id)))


@router.put(
    TRIGGER,
    summary="Replace a sandbox trigger (name, conditions and sandbox_config required)",
    responses={200: {"model": SandboxTrigger}, **error_responses(400, 404, 409)},
    dependencies=[repository_action(Action.MANAGE_SANDBOX_TRIGGERS)],
)
async def replace_trigger(
    trigger_id: TriggerId,
    body: UpdateSandboxTriggerRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    trigger = await services.triggers.replace(access.repo.id, trigger_id, body.spec())
    return JSONResponse(trigger_json(trigger))


@router.patch(
    TRIGGER,
    summary="Enable or disable a sandbox trigger",
    responses={200: {"model": SandboxTrigger}, **error_responses(400, 404)},
    dependencies=[repository_action(Action.MANAGE_SANDBOX_TRIGGERS)],
)
async def toggle_trigger(
    trigger_id: TriggerId,
    body: PatchSandboxTriggerRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    trigger = await services.triggers.set_enabled(access.repo.id, trigger_id, body.enabled)
    return JSONResponse(trigger_json(trigger))


@router.delete(
    TRIGGER,
    status_code=204,
    summary="Delete a sandbox trigger and its runs",
    responses=error_responses(404),
    dependencies=[repository_action(Action.MANAGE_SANDBOX_TRIGGERS)],
)
async def delete_trigger(
    trigger_id: TriggerId, services: ServicesDep, access: AccessDep
) -> Response:
    await services.triggers.delete(access.repo.id, trigger_id)
    return Response(status_code=204)


@router.get(
    f"{TRIGGER}/runs",
    summary="A sandbox trigger's runs, newest first",
    responses={200: {"model": SandboxTriggerRunList}, **error_responses(400, 404)},
    dependencies=[repository_action(Action.LIST_SANDBOXES)],
)
async def list_trigger_runs(
    trigger_id: TriggerId, page: Pages, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    runs, has_more = await services.triggers.runs(
        access.repo.id, trigger_id, after=page.after, amount=page.amount
    )
    return JSONResponse(
        envelope(
            [run_json(run) for run in runs],
            has_more=has_more,
            next_offset=runs[-1].id if runs else None,
            amount=page.amount,
        )
    )
