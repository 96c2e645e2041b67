"""Commits: the log, one commit, diffs, and reverts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, repository_action
from lamina_server.api.errors import bad_request
from lamina_server.api.pagination import PageParams, diff_page_params, page_envelope
from lamina_server.api.params import (
    PREFIX_SCHEMA,
    REPO,
    CommitId,
    Delimiter,
    Pages,
    Prefix,
    ServicesDep,
)
from lamina_server.api.retention import check_readable, is_stale
from lamina_server.api.schemas import (
    ListingEntryBody,
    Metadata,
    PaginationBody,
    error_responses,
    listing_item_json,
    rfc3339,
)
from lamina_server.api.validation import validate_delimiter, validate_path, validate_prefix
from lamina_server.authz import Action
from lamina_server.versioning import CommitInfo

router = APIRouter(tags=["Commits"], route_class=LaminaRoute)


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
    metadata: Metadata | None = None


class RevertResponse(BaseModel):
    commit_id: str


def commit_json(commit: CommitInfo, *, stale: bool) -> dict[str, Any]:
    return {
        "id": commit.id,
        "committer": commit.committer.name,
        "committer_type": commit.committer.type,
        "committer_id": commit.committer.id,
        "message": commit.message,
        "creation_date": rfc3339(commit.creation_date),
        "parents": list(commit.parents),
        "metadata": dict(commit.metadata),
        "is_stale": stale,
        "meta_range_id": commit.meta_range_id,
        "object_count": commit.object_count,
        "total_size": commit.total_size,
    }


@router.get(
    f"{REPO}/log",
    summary="The commit log, newest first",
    responses={200: {"model": CommitLogList}, **error_responses(400, 404)},
    dependencies=[repository_action(Action.LIST_COMMITS)],
)
async def get_log(
    page: Pages,
    services: ServicesDep,
    access: AccessDep,
    ref: Annotated[str | None, Query(description="Start from this commit (default HEAD)")] = None,
    prefix: Annotated[
        str | None,
        Query(
            description="Only commits that changed a path under this prefix",
            json_schema_extra=PREFIX_SCHEMA,
        ),
    ] = None,
    object_path: Annotated[
        str | None,
        Query(alias="object", description="Only commits that changed this exact path"),
    ] = None,
) -> JSONResponse:
    result = await services.versions.log(
        access.repo.id,
        ref=ref or None,
        after=page.after,
        amount=page.amount,
        prefix=validate_prefix(prefix) or None,
        object_path=validate_path(object_path, "object") if object_path else None,
    )
    head = await services.versions.head(access.repo.id)
    items = [commit_json(c, stale=is_stale(c, access.repo, head)) for c in result.items]
    return JSONResponse(page_envelope(items, result, page.amount))


@router.get(
    f"{REPO}/commits/{{commit_id}}",
    summary="Get a commit",
    responses={200: {"model": CommitLog}, **error_responses(404)},
    dependencies=[repository_action(Action.GET_COMMIT)],
)
async def get_commit(commit_id: CommitId, services: ServicesDep, access: AccessDep) -> JSONResponse:
    commit = await services.versions.get_commit(access.repo.id, commit_id)
    head = await services.versions.head(access.repo.id)
    return JSONResponse(commit_json(commit, stale=is_stale(commit, access.repo, head)))


@router.get(
    f"{REPO}/diff",
    summary="Changes between two commits (left omitted: the empty tree), or of a session",
    responses={200: {"model": DiffList}, **error_responses(400, 404, 410)},
    dependencies=[repository_action(Action.GET_COMMIT)],
)
async def diff(
    page: Annotated[PageParams, Depends(diff_page_params)],
    services: ServicesDep,
    access: AccessDep,
    left: Annotated[str | None, Query(description="Left commit ID")] = None,
    right: Annotated[
        str | None, Query(description="Right commit ID; required unless session_id is given")
    ] = None,
    session_id: Annotated[
        str | None, Query(description="Diff a session's changes against its base commit")
    ] = None,
    prefix: Prefix = None,
    delimiter: Delimiter = None,
) -> JSONResponse:
    if session_id:
        if left or right:
            raise bad_request("session_id: cannot be combined with left/right")
    elif not right:
        raise bad_request("right: is required unless session_id is given")
    await check_readable(services, access.repo, left or None, right or None)
    result = await services.versions.diff(
        access.repo.id,
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
    f"{REPO}/commits/{{commit_id}}/revert",
    status_code=201,
    summary="Revert a single-parent commit with a new commit on HEAD",
    responses={201: {"model": RevertResponse}, **error_responses(400, 404, 409)},
    dependencies=[repository_action(Action.REVERT_COMMIT)],
)
async def revert_commit(
    commit_id: CommitId,
    services: ServicesDep,
    access: AccessDep,
    body: Annotated[RevertRequest | None, Body()] = None,
) -> JSONResponse:
    request = body or RevertRequest(message=None)
    new_id = await services.versions.revert(
        access.repo.id,
        commit_id,
        message=request.message,
        metadata=request.metadata,
        committer=access.caller.committer,
    )
    return JSONResponse({"commit_id": new_id}, status_code=201)
