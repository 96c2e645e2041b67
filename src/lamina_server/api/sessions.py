"""Sessions: create, commit (three-way merge onto HEAD), roll back, approval polling.

A session's staged changes are listed by ``GET {R}/changes`` (objects router).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.deps import Services, current_principal, get_services, resolve_repository
from lamina_server.api.schemas import error_responses
from lamina_server.errors import not_found
from lamina_server.identity import Principal

# Authentication runs first, before any parameter is validated.
router = APIRouter(tags=["Sessions"], dependencies=[Depends(current_principal)])

R = "/organizations/{organization}/repositories/{repository}"
OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
SessionId = Annotated[str, Path(description="Session ID")]
Caller = Annotated[Principal, Depends(current_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]


class CreateSessionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str


class CommitSessionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str = Field(max_length=65536)
    metadata: dict[str, str] | None = None


class CommitSessionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    commit_id: str


@router.post(
    f"{R}/sessions",
    status_code=201,
    summary="Open a session on the repository's current HEAD",
    responses={201: {"model": CreateSessionResponse}, **error_responses(403, 404)},
)
async def create_session(
    organization: OrgName, repository: RepoName, services: ServicesDep, caller: Caller
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    session = await services.versions.create_session(repo.id, created_by=caller.committer)
    return JSONResponse({"session_id": session.id}, status_code=201)


@router.post(
    f"{R}/sessions/{{session_id}}",
    summary="Commit a session: its changes land whole on HEAD, or not at all (409 conflict)",
    responses={
        200: {"model": CommitSessionResponse},
        **error_responses(400, 404, 409),
    },
)
async def commit_session(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    body: CommitSessionRequest,
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    commit_id = await services.versions.commit_session(
        repo.id,
        session_id,
        message=body.message,
        metadata=body.metadata or {},
        committer=caller.committer,
    )
    return JSONResponse({"commit_id": commit_id})


@router.delete(
    f"{R}/sessions/{{session_id}}",
    status_code=204,
    summary="Roll a session back (discard its staged changes)",
    responses=error_responses(400, 404),
)
async def rollback_session(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    services: ServicesDep,
    caller: Caller,
) -> Response:
    repo = await resolve_repository(services, caller, organization, repository)
    await services.versions.rollback_session(repo.id, session_id)
    return Response(status_code=204)


@router.head(
    f"{R}/sessions/{{session_id}}/approve",
    summary="Is the session pending approval? (200 pending; 404 otherwise)",
    responses={200: {"description": "Pending approval"}, **error_responses(404)},
)
async def session_approval_pending(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    services: ServicesDep,
    caller: Caller,
) -> Response:
    repo = await resolve_repository(services, caller, organization, repository)
    session = await services.versions.get_session(repo.id, session_id)
    # No approval policies exist yet, so no session is ever pending: open, committed and
    # rolled-back sessions all answer 404, which ends a client's approval polling.
    raise not_found(f"session {session.id!r} is not pending approval", "not_pending_approval")
