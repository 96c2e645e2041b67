"""Sessions: create, list changes, commit (three-way merge onto HEAD), roll back, approval
polling."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.errors import not_found
from lamina_server.api.pagination import page_envelope
from lamina_server.api.params import REPO, Pages, Prefix, ServicesDep, SessionId, SessionPathId
from lamina_server.api.schemas import (
    EntryBody,
    Metadata,
    PaginationBody,
    entry_json,
    error_responses,
)
from lamina_server.api.validation import require, validate_prefix
from lamina_server.authz import Action

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
    page = await services.versions.list_changes(
        access.repo.id,
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
    summary="Commit a session: its changes land whole on HEAD, or not at all (409 conflict)",
    responses={
        200: {"model": CommitSessionResponse},
        **error_responses(400, 404, 409),
    },
    dependencies=[repository_action(Action.COMMIT_SESSION)],
)
async def commit_session(
    session_id: SessionPathId,
    body: CommitSessionRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    commit_id = await services.versions.commit_session(
        access.repo.id,
        session_id,
        message=body.message,
        metadata=body.metadata or {},
        committer=access.caller.committer,
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
    await services.versions.rollback_session(access.repo.id, session_id)
    return Response(status_code=204)


@router.head(
    f"{REPO}/sessions/{{session_id}}/approve",
    summary="Is the session pending approval? (200 pending; 404 otherwise)",
    responses={200: {"description": "Pending approval"}, **error_responses(404)},
    dependencies=[repository_action(Action.GET_SESSION)],
)
async def session_approval_pending(
    session_id: SessionPathId, services: ServicesDep, access: AccessDep
) -> Response:
    session = await services.versions.get_session(access.repo.id, session_id)
    # No approval policies exist yet, so no session is ever pending: open, committed and
    # rolled-back sessions all answer 404, which ends a client's approval polling.
    raise not_found(f"session {session.id!r} is not pending approval", "not_pending_approval")
