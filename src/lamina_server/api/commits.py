"""Commits: the log, one commit, diffs, and reverts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.deps import Services, current_principal, get_services, resolve_repository
from lamina_server.api.pagination import PageParams, diff_page_params, page_envelope, page_params
from lamina_server.api.schemas import (
    ListingEntryBody,
    PaginationBody,
    error_responses,
    listing_item_json,
    rfc3339,
)
from lamina_server.api.validation import validate_delimiter, validate_path, validate_prefix
from lamina_server.errors import bad_request
from lamina_server.identity import Principal
from lamina_server.versioning import CommitInfo

# Authentication runs first, before any parameter is validated.
router = APIRouter(tags=["Commits"], dependencies=[Depends(current_principal)])

R = "/organizations/{organization}/repositories/{repository}"
OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
CommitId = Annotated[str, Path(description="Commit ID")]
Caller = Annotated[Principal, Depends(current_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]


class CommitLog(BaseModel):
    id: str
    committer: str
    committer_type: Literal["user", "role", "agent"]
    committer_id: str
    message: str
    creation_date: datetime
    parents: list[str]
    metadata: dict[str, str]
    is_stale: bool
    meta_range_id: str
    object_count: int
    total_size: int


class CommitLogList(BaseModel):
    results: list[CommitLog]
    pagination: PaginationBody


class DiffList(BaseModel):
    results: list[ListingEntryBody]
    pagination: PaginationBody


class RevertRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str | None = Field(
        None, max_length=65536, description='Default: Revert "<original message>"'
    )
    metadata: dict[str, str] | None = None


class RevertResponse(BaseModel):
    commit_id: str


def commit_json(commit: CommitInfo) -> dict[str, Any]:
    return {
        "id": commit.id,
        "committer": commit.committer.name,
        "committer_type": commit.committer.type,
        "committer_id": commit.committer.id,
        "message": commit.message,
        "creation_date": rfc3339(commit.creation_date),
        "parents": list(commit.parents),
        "metadata": dict(commit.metadata),
        # Retention is not enforced yet, so every commit stays readable.
        "is_stale": False,
        "meta_range_id": commit.meta_range_id,
        "object_count": commit.object_count,
        "total_size": commit.total_size,
    }


@router.get(
    f"{R}/log",
    summary="The commit log, newest first",
    responses={200: {"model": CommitLogList}, **error_responses(400, 404)},
)
async def get_log(
    organization: OrgName,
    repository: RepoName,
    page: Annotated[PageParams, Depends(page_params)],
    services: ServicesDep,
    caller: Caller,
    ref: Annotated[str | None, Query(description="Start from this commit (default HEAD)")] = None,
    prefix: Annotated[
        str | None, Query(description="Only commits that changed a path under this prefix")
    ] = None,
    object_path: Annotated[
        str | None,
        Query(alias="object", description="Only commits that changed this exact path"),
    ] = None,
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    result = await services.versions.log(
        repo.id,
        ref=ref or None,
        after=page.after,
        amount=page.amount,
        prefix=validate_prefix(prefix) or None,
        object_path=validate_path(object_path, "object") if object_path else None,
    )
    return JSONResponse(
        page_envelope([commit_json(commit) for commit in result.items], result, page.amount)
    )


@router.get(
    f"{R}/commits/{{commit_id}}",
    summary="Get a commit",
    responses={200: {"model": CommitLog}, **error_responses(404)},
)
async def get_commit(
    organization: OrgName,
    repository: RepoName,
    commit_id: CommitId,
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    commit = await services.versions.get_commit(repo.id, commit_id)
    return JSONResponse(commit_json(commit))


@router.get(
    f"{R}/diff",
    summary="Changes between two commits (left omitted: the empty tree), or of a session",
    responses={200: {"model": DiffList}, **error_responses(400, 404)},
)
async def diff(
    organization: OrgName,
    repository: RepoName,
    page: Annotated[PageParams, Depends(diff_page_params)],
    services: ServicesDep,
    caller: Caller,
    left: Annotated[str | None, Query(description="Left commit ID")] = None,
    right: Annotated[
        str | None, Query(description="Right commit ID; required unless session_id is given")
    ] = None,
    session_id: Annotated[
        str | None, Query(description="Diff a session's changes against its base commit")
    ] = None,
    prefix: Annotated[str | None, Query()] = None,
    delimiter: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    if session_id:
        if left or right:
            raise bad_request("session_id: cannot be combined with left/right")
    elif not right:
        raise bad_request("right: is required unless session_id is given")
    result = await services.versions.diff(
        repo.id,
        left=left or None,
        right=right or None,
        session_id=session_id or None,
        prefix=validate_prefix(prefix),
        delimiter=validate_delimiter(delimiter),
        after=page.after,
        amount=page.amount,
    )
    return JSONResponse(
        page_envelope([listing_item_json(item) for item in result.items], result, page.amount)
    )


@router.post(
    f"{R}/commits/{{commit_id}}/revert",
    status_code=201,
    summary="Revert a single-parent commit with a new commit on HEAD",
    responses={201: {"model": RevertResponse}, **error_responses(400, 404, 409)},
)
async def revert_commit(
    organization: OrgName,
    repository: RepoName,
    commit_id: CommitId,
    services: ServicesDep,
    caller: Caller,
    body: Annotated[RevertRequest | None, Body()] = None,
) -> JSONResponse:
    repo = await resolve_repository(services, caller, organization, repository)
    request = body or RevertRequest()
    new_id = await services.versions.revert(
        repo.id,
        commit_id,
        message=request.message,
        metadata=request.metadata,
        committer=caller.committer,
    )
    return JSONResponse({"commit_id": new_id}, status_code=201)
