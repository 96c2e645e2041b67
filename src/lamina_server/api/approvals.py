"""Approvals of held commits (:mod:`lamina_server.governance.approvals`): the contract's
``…/sessions/{id}/approve`` (HEAD polls, GET reviews the changes, POST approves and commits),
and Lamina's ``…/reject`` and the list of a repository's approval requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.deps import Services, request_base
from lamina_server.api.errors import bad_request, not_found
from lamina_server.api.pagination import OffsetParams, offset_envelope, offset_params
from lamina_server.api.params import REPO, Pages, Prefix, ServicesDep, SessionPathId
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.api.sessions import (
    ChangeList,
    CommitSessionRequest,
    CommitSessionResponse,
    changes_page,
)
from lamina_server.authz import Action
from lamina_server.governance import audit
from lamina_server.governance.approvals import (
    STATES,
    ApprovalRecord,
    approval_document,
    approval_links,
)
from lamina_server.repositories import RepositoryRecord

router = APIRouter(tags=["Approvals"], route_class=LaminaRoute)

APPROVE = f"{REPO}/sessions/{{session_id}}/approve"


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str = Field("", max_length=4096)


class PrincipalBody(BaseModel):
    type: str
    id: str
    name: str


class ApprovalBody(BaseModel):
    session_id: str
    organization: str
    repository: str
    state: str
    message: str
    metadata: dict[str, str]
    requested_by: PrincipalBody
    requested_at: str
    sandbox_id: str | None
    decided_by: PrincipalBody | None
    decided_at: str | None
    reason: str
    commit_id: str | None
    api_url: str
    web_url: str


class ApprovalPage(BaseModel):
    items: list[ApprovalBody]
    limit: int
    offset: int
    total: int


def approval_json(
    services: Services, base: str, repo: RepositoryRecord, record: ApprovalRecord
) -> dict[str, Any]:
    links = approval_links(services.config.public_url or base, repo, record.session_id)
    return {
        **approval_document(record),
        "organization": repo.org_name,
        "repository": repo.name,
        "requested_at": rfc3339(record.requested_at),
        "decided_at": rfc3339(record.decided_at) if record.decided_at else None,
        "api_url": links.api_url,
        "web_url": links.web_url,
    }


async def _state_filter(
    state: Annotated[
        str | None, Query(description="pending, approved, rejected, withdrawn")
    ] = None,
) -> str | None:
    if state and state not in STATES:
        raise bad_request(f"state: must be one of {', '.join(STATES)}, got {state!r}")
    return state or None


@router.head(
    APPROVE,
    summary="Is the session pending approval? (200 pending; 404 otherwise)",
    responses={200: {"description": "Pending approval"}, **error_responses(404)},
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def session_approval_pending(
    session_id: SessionPathId, services: ServicesDep, access: AccessDep
) -> Response:
    if not await services.approvals.is_pending(access.repo.id, session_id):
        raise not_found(f"session {session_id!r} is not pending approval", "not_pending_approval")
    return Response(status_code=200)


@router.get(
    APPROVE,
    summary="Review the changes of a session held for approval",
    response_model=ChangeList,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def review_session(
    session_id: SessionPathId,
    services: ServicesDep,
    access: AccessDep,
    pages: Pages,
    prefix: Prefix = None,
) -> JSONResponse:
    await services.approvals.get(access.repo.id, session_id)
    return await changes_page(services, access.repo.id, session_id, pages, prefix)


@router.post(
    APPROVE,
    summary="Approve a held session: its changes land, committed as their requester",
    responses={200: {"model": CommitSessionResponse}, **error_responses(400, 403, 404, 409)},
    dependencies=[repository_action(Action.APPROVE_SESSION)],
)
async def approve_session(
    session_id: SessionPathId,
    body: CommitSessionRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    audit.annotate(outcome="approved")
    record = await services.approvals.approve(
        access.repo.id,
        session_id,
        access.caller,
        message=body.message or None,
        metadata=body.metadata,
    )
    return JSONResponse({"commit_id": record.commit_id})


@router.post(
    f"{REPO}/sessions/{{session_id}}/reject",
    summary="Reject a held session: its changes are rolled back",
    response_model=ApprovalBody,
    responses=error_responses(400, 403, 404, 409),
    dependencies=[repository_action(Action.APPROVE_SESSION)],
)
async def reject_session(
    request: Request,
    session_id: SessionPathId,
    body: RejectRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    audit.annotate(outcome="rejected", reason=body.reason)
    record = await services.approvals.reject(
        access.repo.id, session_id, access.caller, reason=body.reason
    )
    return JSONResponse(approval_json(services, request_base(request), access.repo, record))


@router.get(
    f"{REPO}/approvals",
    summary="The repository's approval requests, newest first (limit/offset paged)",
    response_model=ApprovalPage,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def list_approvals(
    request: Request,
    services: ServicesDep,
    access: AccessDep,
    page: Annotated[OffsetParams, Depends(offset_params)],
    state: Annotated[str | None, Depends(_state_filter)],
) -> JSONResponse:
    records, total = await services.approvals.page(
        organization_id=access.org.id,
        repository_id=access.repo.id,
        state=state,
        limit=page.limit,
        offset=page.offset,
    )
    base = request_base(request)
    items = [approval_json(services, base, access.repo, record) for record in records]
    return JSONResponse(offset_envelope(items, page, total))


@router.get(
    f"{REPO}/approvals/{{session_id}}",
    summary="One approval request",
    response_model=ApprovalBody,
    responses=error_responses(404),
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def get_approval(
    request: Request, session_id: SessionPathId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.approvals.get(access.repo.id, session_id)
    return JSONResponse(approval_json(services, request_base(request), access.repo, record))
