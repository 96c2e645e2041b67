"""``/api/v2`` ABPs, their governed invocations, runs and approvals.

::

    POST /abps                      {name, repository: "org/repo", image, command, requires_approval, …}
    GET  /abps                      limit/offset
    GET  /abps/{abp_id}
    POST /abps/{abp_id}/deploy      /undeploy
    POST /abps/{abp_id}/invoke      {payload}: InvokeResult
    GET  /pack-runs                 limit/offset (?abp_id=)
    GET  /pack-runs/{run_id}        {run_id, status, …}
    GET  /approvals                 limit/offset (?state=)
    POST /approvals/{approval_id}/approve   /reject {reason?}
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute
from lamina_server.api.deps import Services
from lamina_server.api.pagination import OffsetParams, offset_envelope, offset_params
from lamina_server.api.params import ServicesDep
from lamina_server.api.schemas import rfc3339
from lamina_server.authz import Action
from lamina_server.governance import audit
from lamina_server.governance.approvals import STATES, ApprovalRecord
from lamina_server.principals import Committer
from lamina_server.velerian.abps import DEPLOYED, UNDEPLOYED, AbpRecord, AbpSpec
from lamina_server.velerian.access import AbpId, GrantDep, On, admit_repository, velerian
from lamina_server.velerian.errors import Conflict, Invalid, ServiceUnavailable
from lamina_server.velerian.evidence_links import pack_of
from lamina_server.velerian.runs import (
    BLOCKED,
    MAX_PAYLOAD,
    RunView,
    abp_sandbox_request,
    new_invocation_id,
    payload_bytes,
)

router = APIRouter(tags=["Governed runs"], route_class=LaminaRoute)

RunId = Annotated[str, Path(description="Run (invocation) id")]
ApprovalId = Annotated[str, Path(description="Approval id (the held run's session id)")]
OffsetDep = Annotated[OffsetParams, Depends(offset_params)]
INVOKE_WAIT = 20.0  # seconds an invoke waits for its run to end or be held (SDK timeout: 30)
PACK_WAIT = 3.0  # and then for the evidence pack its end makes


class CreateAbpBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=128)
    repository: str = Field(min_length=3, max_length=128, description='"organization/repository"')
    image: str = Field("", max_length=255, description="Sandbox image (default: the server's)")
    command: list[str] = Field(min_length=1)
    requires_approval: bool = False
    description: str = Field("", max_length=4096)
    env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: int = Field(300, ge=1, le=86400)
    path_prefix: str = Field("", description="The part of the repository the run sees")


class AbpBody(BaseModel):
    id: str
    name: str
    repository: str
    image: str
    command: list[str]
    requires_approval: bool
    description: str
    env: dict[str, str]
    timeout_seconds: int
    path_prefix: str
    status: str
    created_by: str
    created_at: str
    updated_at: str


class AbpPage(BaseModel):
    items: list[AbpBody]
    limit: int
    offset: int
    total: int


class InvokeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    payload: dict[str, Any]


class RunOutputBody(BaseModel):
    exit_code: int | None
    commit_id: str | None
    status: str
    status_reason: str
    error_message: str
    web_url: str | None = Field(description="Where a held run's changes are reviewed")


class InvokeResultBody(BaseModel):
    invocation_id: str
    outcome: str = Field(
        description="completed, requires_approval, denied, blocked, failed, running"
    )
    is_allowed: bool
    requires_human: bool
    withheld: bool
    constraint_count: int
    aggregated_conditions: list[dict[str, Any]]
    output: RunOutputBody | None
    approval_id: str | None
    evidence_pack_id: str | None
    evidence_pack_s3_key: str | None
    evidence_pack_chain_hash: str | None


class RunBody(InvokeResultBody):
    run_id: str
    status: str = Field(
        description="queued, running, awaiting_approval, succeeded, failed, blocked"
    )
    abp_id: str
    sandbox_id: str | None
    payload_sha256: str
    created_at: str


class RunPage(BaseModel):
    items: list[RunBody]
    limit: int
    offset: int
    total: int


class DecideBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str = Field("", max_length=4096)


def abp_json(abp: AbpRecord) -> dict[str, Any]:
    spec = abp.spec
    return {
        "id": abp.id,
        "name": spec.name,
        "repository": abp.repository,
        "image": spec.image,
        "command": list(spec.command),
        "requires_approval": spec.requires_approval,
        "description": spec.description,
        "env": dict(spec.env),
        "timeout_seconds": spec.timeout_seconds,
        "path_prefix": spec.path_prefix,
        "status": abp.status,
        "created_by": abp.created_by_name,
        "created_at": rfc3339(abp.created_at),
        "updated_at": rfc3339(abp.updated_at),
    }


async def result_json(services: Services, view: RunView, *, wait: float = 0.0) -> dict[str, Any]:
    """The run as velerian-sdk's ``InvokeResult`` (plus the run's own fields); ``wait``: how
    long to wait for the pack of a run that just ended."""
    invocation, sandbox = view.invocation, view.sandbox
    status = view.status
    held = status == "awaiting_approval"
    conditions: list[dict[str, Any]] = [
        {"kind": "policy", "action": str(action), "allowed": invocation.verdict == "allowed"}
        for action in (Action.INVOKE_RUN, Action.CREATE_SANDBOX)
    ]
    if invocation.abp.spec.requires_approval:
        conditions.append({"kind": "approval", "required": True})
    if invocation.reason:
        conditions.append({"kind": "denial", "reason": invocation.reason})
    output = None
    if sandbox is not None:
        outcome = sandbox.outcome
        output = {
            "exit_code": outcome.exit_code,
            "commit_id": outcome.commit_id or None,
            "status": outcome.status,
            "status_reason": outcome.status_reason,
            "error_message": outcome.error_message,
            "web_url": outcome.web_url or None,
        }
    pack = None
    if sandbox is not None and not view.active:
        organization, _, repository = invocation.abp.repository.partition("/")
        pack = await pack_of(services, sandbox, organization, repository, wait=wait)
    return {
        "invocation_id": invocation.id,
        "run_id": invocation.id,
        "status": status,
        "outcome": view.outcome,
        "is_allowed": status != BLOCKED,
        "requires_human": held,
        "withheld": held,
        "constraint_count": len(conditions),
        "aggregated_conditions": conditions,
        "output": output,
        "approval_id": sandbox.session_id if held and sandbox is not None else None,
        "evidence_pack_id": pack.id if pack else None,
        "evidence_pack_s3_key": pack.s3_key if pack else None,
        "evidence_pack_chain_hash": pack.chain_hash if pack else None,
        "abp_id": invocation.abp.id,
        "sandbox_id": invocation.sandbox_id,
        "payload_sha256": invocation.payload_sha256,
        "created_at": rfc3339(invocation.created_at),
    }


# --- ABPs ------------------------------------------------------------------------------------


@router.post(
    "/abps",
    status_code=201,
    summary="Create an ABP (draft): a named run definition in a repository",
    response_model=AbpBody,
    dependencies=[
        velerian("write", Action.MANAGE_SANDBOX_TRIGGERS, on=On.BODY, audit="abp.create")
    ],
)
async def create_abp(
    request: Request, body: CreateAbpBody, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    org_name, _, repo_name = body.repository.partition("/")
    if org_name != access.org.name or not repo_name:
        raise Invalid(
            f"repository: must be 'organization/repository' in the key's organization "
            f"{access.org.name!r}, got {body.repository!r}"
        )
    repo = await admit_repository(request, services, repo_name)
    spec = AbpSpec(
        name=body.name,
        image=body.image,
        command=tuple(body.command),
        requires_approval=body.requires_approval,
        description=body.description,
        env=body.env,
        timeout_seconds=body.timeout_seconds,
        path_prefix=body.path_prefix,
    )
    abp_sandbox_request(spec, repo, services.sandboxes.default_image)  # validates it, or 422
    abp_id = services.velerian.abps.new_id()
    audit.annotate(resource_kind="abp", resource_id=abp_id)
    abp = await services.velerian.abps.create(abp_id, repo, spec, access.caller)
    return JSONResponse(abp_json(abp), status_code=201)


@router.get(
    "/abps",
    summary="The organization's ABPs, oldest first (limit/offset)",
    response_model=AbpPage,
    dependencies=[velerian("runs:read", Action.LIST_REPOSITORIES, on=On.TENANT)],
)
async def list_abps(services: ServicesDep, access: AccessDep, page: OffsetDep) -> JSONResponse:
    records, total = await services.velerian.abps.page(
        access.org.id, limit=page.limit, offset=page.offset
    )
    return JSONResponse(offset_envelope([abp_json(abp) for abp in records], page, total))


@router.get(
    "/abps/{abp_id}",
    summary="One ABP",
    response_model=AbpBody,
    dependencies=[velerian("runs:read", Action.GET_REPOSITORY, on=On.ABP)],
)
async def get_abp(abp_id: AbpId, grant: GrantDep) -> JSONResponse:
    return JSONResponse(abp_json(grant.target))


async def _move(services: Services, abp: AbpRecord, status: str) -> JSONResponse:
    return JSONResponse(abp_json(await services.velerian.abps.move(abp, status)))


@router.post(
    "/abps/{abp_id}/deploy",
    summary="Deploy an ABP: it can be invoked",
    response_model=AbpBody,
    dependencies=[velerian("write", Action.MANAGE_SANDBOX_TRIGGERS, on=On.ABP, audit="abp.deploy")],
)
async def deploy_abp(abp_id: AbpId, services: ServicesDep, grant: GrantDep) -> JSONResponse:
    return await _move(services, grant.target, DEPLOYED)


@router.post(
    "/abps/{abp_id}/undeploy",
    summary="Undeploy an ABP: invoking it is a 409 until it is deployed again",
    response_model=AbpBody,
    dependencies=[
        velerian("write", Action.MANAGE_SANDBOX_TRIGGERS, on=On.ABP, audit="abp.undeploy")
    ],
)
async def undeploy_abp(abp_id: AbpId, services: ServicesDep, grant: GrantDep) -> JSONResponse:
    return await _move(services, grant.target, UNDEPLOYED)


@router.post(
    "/abps/{abp_id}/invoke",
    summary="Run a deployed ABP, governed: the verdict, then its sandbox (waited for up to "
    f"{INVOKE_WAIT:.0f} s)",
    response_model=InvokeResultBody,
    dependencies=[
        velerian(
            "runs:write",
            Action.INVOKE_RUN,
            Action.CREATE_SANDBOX,
            on=On.ABP,
            audit="abp.invoke",
            verdict=True,
        )
    ],
)
async def invoke_abp(
    abp_id: AbpId, body: InvokeBody, services: ServicesDep, access: AccessDep, grant: GrantDep
) -> JSONResponse:
    abp: AbpRecord = grant.target
    if abp.status != DEPLOYED:
        raise Conflict(f"ABP {abp.id!r} is {abp.status}, not deployed: deploy it first")
    payload = payload_bytes(body.payload)
    if len(payload) > MAX_PAYLOAD:
        raise Invalid(f"payload: at most {MAX_PAYLOAD} bytes as JSON, got {len(payload)}")
    runs = services.velerian.runs
    invocation_id = new_invocation_id()
    # The entry names the run (its sandbox, once the sandbox service names it), in details too.
    audit.annotate(
        resource_kind="run", resource_id=invocation_id, run_id=invocation_id, abp_id=abp.id
    )
    if grant.refusal is not None:
        invocation = await runs.deny(
            invocation_id, abp, grant.refusal, access.caller, grant.key_id, payload
        )
        return JSONResponse(await result_json(services, await runs.view(invocation)))
    if services.sandboxes.unavailable:
        raise ServiceUnavailable(f"sandboxes cannot run here: {services.sandboxes.unavailable}")
    request = abp_sandbox_request(abp.spec, access.repo, services.sandboxes.default_image)
    invocation = await runs.start(invocation_id, abp, request, access.caller, grant.key_id, payload)
    view = await runs.settle(invocation, INVOKE_WAIT)
    return JSONResponse(await result_json(services, view, wait=PACK_WAIT))


@router.get(
    "/pack-runs",
    summary="The organization's governed runs, newest first (limit/offset)",
    response_model=RunPage,
    dependencies=[velerian("runs:read", Action.LIST_REPOSITORIES, on=On.TENANT)],
)
async def list_pack_runs(
    services: ServicesDep,
    access: AccessDep,
    page: OffsetDep,
    abp_id: Annotated[str | None, Query(description="Only this ABP's runs")] = None,
) -> JSONResponse:
    runs = services.velerian.runs
    found, total = await runs.page(
        access.org.id, abp_id=abp_id or None, limit=page.limit, offset=page.offset
    )
    items = [await result_json(services, await runs.view(invocation)) for invocation in found]
    return JSONResponse(offset_envelope(items, page, total))


@router.get(
    "/pack-runs/{run_id}",
    summary="One governed run: its status (terminal: succeeded, failed, blocked) and result",
    response_model=RunBody,
    dependencies=[velerian("runs:read", Action.GET_SANDBOX, on=On.RUN)],
)
async def get_pack_run(run_id: RunId, services: ServicesDep, grant: GrantDep) -> JSONResponse:
    view = await services.velerian.runs.view(grant.target)
    return JSONResponse(await result_json(services, view))


# --- approvals -------------------------------------------------------------------------------


class ApprovalItem(BaseModel):
    id: str
    session_id: str
    repository: str
    state: str
    message: str
    requested_by: dict[str, str]
    requested_at: str
    sandbox_id: str | None
    decided_by: dict[str, str] | None
    decided_at: str | None
    reason: str
    commit_id: str | None


class ApprovalPage(BaseModel):
    items: list[ApprovalItem]
    limit: int
    offset: int
    total: int


async def _state(
    state: Annotated[str | None, Query(description=", ".join(STATES))] = None,
) -> str | None:
    if state and state not in STATES:
        raise Invalid(f"state: must be one of {', '.join(STATES)}, got {state!r}")
    return state or None


def _who(committer: Committer | None) -> dict[str, str] | None:
    if committer is None:
        return None
    return {"type": committer.type, "id": committer.id, "name": committer.name}


def _approval_json(organization: str, repository: str, record: ApprovalRecord) -> dict[str, Any]:
    return {
        "id": record.session_id,
        "session_id": record.session_id,
        "repository": f"{organization}/{repository}",
        "state": record.state,
        "message": record.message,
        "requested_by": _who(record.requested_by),
        "requested_at": rfc3339(record.requested_at),
        "sandbox_id": record.sandbox_id,
        "decided_by": _who(record.decided_by),
        "decided_at": rfc3339(record.decided_at) if record.decided_at else None,
        "reason": record.reason,
        "commit_id": record.commit_id,
    }


@router.get(
    "/approvals",
    summary="The organization's approval requests, newest first (limit/offset)",
    response_model=ApprovalPage,
    dependencies=[velerian("runs:read", Action.LIST_REPOSITORIES, on=On.TENANT)],
)
async def list_approvals(
    request: Request,
    services: ServicesDep,
    access: AccessDep,
    page: OffsetDep,
    state: Annotated[str | None, Depends(_state)],
) -> JSONResponse:
    records, total = await services.approvals.page(
        organization_id=access.org.id, state=state, limit=page.limit, offset=page.offset
    )
    items = []
    for record in records:
        repo = await services.repositories.by_id(record.repository_id)
        items.append(_approval_json(access.org.name, repo.name, record))
    return JSONResponse(offset_envelope(items, page, total))


@router.post(
    "/approvals/{approval_id}/approve",
    summary="Approve a held run (or commit): its changes land, as their requester's",
    response_model=ApprovalItem,
    dependencies=[
        velerian("runs:write", Action.APPROVE_SESSION, on=On.APPROVAL, audit="approval.approve")
    ],
)
async def approve(
    approval_id: ApprovalId,
    request: Request,
    body: DecideBody,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    audit.annotate(outcome="approved", reason=body.reason)
    record = await services.approvals.approve(access.repo.id, approval_id, access.caller)
    return JSONResponse(_approval_json(access.org.name, access.repo.name, record))


@router.post(
    "/approvals/{approval_id}/reject",
    summary="Reject a held run (or commit): its changes are dropped",
    response_model=ApprovalItem,
    dependencies=[
        velerian("runs:write", Action.APPROVE_SESSION, on=On.APPROVAL, audit="approval.reject")
    ],
)
async def reject(
    approval_id: ApprovalId,
    request: Request,
    body: DecideBody,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    audit.annotate(outcome="rejected", reason=body.reason)
    record = await services.approvals.reject(
        access.repo.id, approval_id, access.caller, reason=body.reason
    )
    return JSONResponse(_approval_json(access.org.name, access.repo.name, record))
