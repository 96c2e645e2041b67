"""Sessions: create, list the open ones (a Lamina extension), list changes, commit (three-way
merge onto HEAD, or held for approval: :mod:`lamina_server.api.approvals`), roll back."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.deps import Services, request_base
from lamina_server.api.pagination import PageParams, page_envelope
from lamina_server.api.params import REPO, Pages, Prefix, ServicesDep, SessionId, SessionPathId
from lamina_server.api.schemas import (
    EntryBody,
    Metadata,
    PaginationBody,
    entry_json,
    error_responses,
    rfc3339,
)
from lamina_server.api.validation import require, validate_prefix
from lamina_server.authz import Action
from lamina_server.governance import audit
from lamina_server.governance.approvals import approval_links
from lamina_server.governance.audit import note_commit
from lamina_server.versioning import SessionInfo

router = APIRouter(tags=["Sessions"], route_class=LaminaRoute)


class CreateSessionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str


class CommitSessionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str = Field(max_length=65536)
    metadata: Metadata | None = None


class CommitSessionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    commit_id: str


class ApprovalRequiredResponse(BaseModel):
    approval_required: bool
    session_id: str
    message: str
    api_url: str = Field(description="The API route that reviews (GET) and approves (POST)")
    web_url: str = Field(description="The approval page, for a browser")


class OpenSessionBody(BaseModel):
    session_id: str
    state: Literal["open", "awaiting_approval"]
    base_commit: str = Field(description="The commit the session was opened on")
    created_by_type: Literal["user", "role", "agent"]
    created_by: str = Field(description="The id of the principal that opened it")
    created_by_name: str
    created_at: str


class OpenSessionList(BaseModel):
    results: list[OpenSessionBody]
    pagination: PaginationBody


class EntryRecordBody(BaseModel):
    path: str
    entry: EntryBody | None = Field(None, description="null for a staged delete")


class ChangeList(BaseModel):
    results: list[EntryRecordBody]
    pagination: PaginationBody


@router.post(
    f"{REPO}/sessions",
    status_code=201,
    summary="Open a session on the repository's current HEAD",
    responses={201: {"model": CreateSessionResponse}, **error_responses(403, 404)},
    dependencies=[repository_action(Action.CREATE_SESSION)],
)
async def create_session(services: ServicesDep, access: AccessDep) -> JSONResponse:
    session = await services.versions.create_session(
        access.repo.id, created_by=access.caller.committer
    )
    return JSONResponse({"session_id": session.id}, status_code=201)


@router.get(
    f"{REPO}/sessions",
    summary="The repository's open sessions, and those held for approval (a Lamina extension)",
    response_model=OpenSessionList,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def list_open_sessions(
    services: ServicesDep, access: AccessDep, pages: Pages
) -> JSONResponse:
    page = await services.versions.list_open_sessions(
        access.repo.id, after=pages.after, amount=pages.amount
    )
    return JSONResponse(page_envelope([_session_json(s) for s in page.items], page, pages.amount))


def _session_json(session: SessionInfo) -> dict[str, str]:
    return {
        "session_id": session.id,
        "state": session.state,
        "base_commit": session.base_commit,
        "created_by_type": session.created_by.type,
        "created_by": session.created_by.id,
        "created_by_name": session.created_by.name,
        "created_at": rfc3339(session.created_at),
    }


@router.get(
    f"{REPO}/changes",
    summary="A session's uncommitted changes (entry null = staged delete)",
    response_model=ChangeList,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.LIST_OBJECTS)],
)
async def list_changes(
    session_id: SessionId,
    services: ServicesDep,
    access: AccessDep,
    pages: Pages,
    prefix: Prefix = None,
) -> JSONResponse:
    require(session_id, "session_id")
    return await changes_page(services, access.repo.id, session_id, pages, prefix)


async def changes_page(
    services: Services,
    repository_id: str,
    session_id: str,
    pages: PageParams,
    prefix: str | None,
) -> JSONResponse:
    """A page of a session's changes (``entry`` null for a staged delete)."""
    page = await services.versions.list_changes(
        repository_id,
        session_id,
        prefix=validate_prefix(prefix),
        after=pages.after,
        amount=pages.amount,
    )
    results = [
        {"path": change.path, "entry": None if change.entry is None else entry_json(change.entry)}
        for change in page.items
    ]
    return JSONResponse(page_envelope(results, page, pages.amount))


@router.post(
    f"{REPO}/sessions/{{session_id}}",
    summary="Commit a session: its changes land whole on HEAD, or not at all (409 conflict); "
    "202 when the repository's rule holds it for approval",
    responses={
        200: {"model": CommitSessionResponse},
        202: {"model": ApprovalRequiredResponse},
        **error_responses(400, 404, 409),
    },
    dependencies=[repository_action(Action.COMMIT_SESSION)],
)
async def commit_session(
    request: Request,
    session_id: SessionPathId,
    body: CommitSessionRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    if await services.approvals.needed(access.repo, session_id, access.caller.type):
        audit.annotate(outcome="approval_required")
        await services.approvals.request(
            access.repo,
            session_id,
            message=body.message,
            metadata=body.metadata or {},
            requester=access.caller.committer,
        )
        links = approval_links(
            services.config.public_url or request_base(request), access.repo, session_id
        )
        return JSONResponse(
            {
                "approval_required": True,
                "session_id": session_id,
                "message": f"this commit needs approval: review it at {links.web_url}",
                "api_url": links.api_url,
                "web_url": links.web_url,
            },
            status_code=202,
        )
    commit_id = await services.versions.commit_session(
        access.repo.id,
        session_id,
        message=body.message,
        metadata=body.metadata or {},
        committer=access.caller.committer,
        also=note_commit,
    )
    return JSONResponse({"commit_id": commit_id})


@router.delete(
    f"{REPO}/sessions/{{session_id}}",
    status_code=204,
    summary="Roll a session back (discard its staged changes)",
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.ROLLBACK_SESSION)],
)
async def rollback_session(
    session_id: SessionPathId, services: ServicesDep, access: AccessDep
) -> Response:
    if await services.approvals.is_pending(access.repo.id, session_id):
        await services.approvals.withdraw(access.repo.id, session_id, access.caller)
    else:
        await services.versions.rollback_session(access.repo.id, session_id)
    return Response(status_code=204)
