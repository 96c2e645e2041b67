"""Repositories of an organization: create, list, get, update (partial PUT), soft delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action, repository_action
from lamina_server.api.pagination import envelope
from lamina_server.api.params import ORG, REPO, Pages, ServicesDep
from lamina_server.api.schemas import SLUG_PATTERN, PaginationBody, error_responses, rfc3339
from lamina_server.api.validation import MAX_PATH_BYTES
from lamina_server.authz import Action
from lamina_server.repositories import DEFAULT_RETENTION_DAYS, RepositoryRecord
from lamina_server.secrets import SecretScope

router = APIRouter(tags=["Repositories"], route_class=LaminaRoute)


MAX_RETENTION_DAYS = 36500
MAX_APPROVAL_PATHS = 100
Visibility = Literal["private", "public"]
ApprovalRequiredFor = Literal["none", "agents", "all"]
ApprovalPaths = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_PATH_BYTES, pattern=r"^[^\u0000]*$")]],
    Field(
        max_length=MAX_APPROVAL_PATHS,
        description="Path prefixes: when given, only commits changing a path under one of them "
        "need approval",
    ),
]
APPROVAL_DOC = (
    "Which commits wait for a human's approval: none, an agent's (agents), or every commit (all)"
)


class CreateRepositoryRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=SLUG_PATTERN)
    description: str = Field("", max_length=4096)
    visibility: Visibility = "private"
    retention_days: int = Field(DEFAULT_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS)
    session_max_duration_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    approval_required_for: ApprovalRequiredFor = Field("none", description=APPROVAL_DOC)
    approval_paths: ApprovalPaths = []


class UpdateRepositoryRequest(BaseModel):
    """Only the fields present change."""

    model_config = ConfigDict(extra="ignore")
    description: str | None = Field(None, max_length=4096)
    visibility: Visibility | None = None
    retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    session_max_duration_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    approval_required_for: ApprovalRequiredFor | None = Field(None, description=APPROVAL_DOC)
    approval_paths: ApprovalPaths | None = None


class Repository(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    visibility: Visibility
    retention_days: int
    session_max_duration_days: int | None
    created_by_type: Literal["user", "role", "agent"]
    created_by: str
    created_at: datetime
    approval_required_for: ApprovalRequiredFor
    approval_paths: list[str]


class RepositoryList(BaseModel):
    results: list[Repository]
    pagination: PaginationBody


def repository_json(repo: RepositoryRecord) -> dict[str, Any]:
    return {
        "id": repo.id,
        "organization_id": repo.organization_id,
        "name": repo.name,
        "description": repo.description,
        "visibility": repo.visibility,
        "retention_days": repo.retention_days,
        "session_max_duration_days": repo.session_max_duration_days,
        "created_by_type": repo.created_by_type,
        "created_by": repo.created_by,
        "created_at": rfc3339(repo.created_at),
        "approval_required_for": repo.approval_required_for,
        "approval_paths": list(repo.approval_paths),
    }


@router.post(
    f"{ORG}/repositories",
    status_code=201,
    summary="Create a repository (with its initial empty commit)",
    responses={201: {"model": Repository}, **error_responses(400, 404, 409)},
    dependencies=[organization_action(Action.CREATE_REPOSITORY)],
)
async def create_repository(
    body: CreateRepositoryRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.repositories.create(
        access.org,
        body.name,
        creator=access.caller,
        description=body.description,
        visibility=body.visibility,
        retention_days=body.retention_days,
        session_max_duration_days=body.session_max_duration_days,
        approval_required_for=body.approval_required_for,
        approval_paths=body.approval_paths,
    )
    try:
        await services.versions.init_repository(record.id, committer=access.caller.committer)
    except Exception:
        await services.repositories.purge(record)
        raise
    return JSONResponse(repository_json(record), status_code=201)


@router.get(
    f"{ORG}/repositories",
    summary="List repositories (by name)",
    responses={200: {"model": RepositoryList}, **error_responses(400, 404)},
    dependencies=[organization_action(Action.LIST_REPOSITORIES)],
)
async def list_repositories(page: Pages, services: ServicesDep, access: AccessDep) -> JSONResponse:
    records, has_more = await services.repositories.list(
        access.org, after=page.after, amount=page.amount
    )
    return JSONResponse(
        envelope(
            [repository_json(record) for record in records],
            has_more=has_more,
            next_offset=records[-1].name if records else None,
            amount=page.amount,
        )
    )


@router.get(
    REPO,
    summary="Get a repository",
    responses={200: {"model": Repository}, **error_responses(404)},
    dependencies=[repository_action(Action.GET_REPOSITORY)],
)
async def get_repository(access: AccessDep) -> JSONResponse:
    return JSONResponse(repository_json(access.repo))


@router.put(
    REPO,
    summary="Update a repository's settings (fields left out keep their value)",
    responses={200: {"model": Repository}, **error_responses(400, 404)},
    dependencies=[repository_action(Action.UPDATE_REPOSITORY)],
)
async def update_repository(
    body: UpdateRepositoryRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    changes = body.model_dump(exclude_unset=True)
    # An explicit null clears the optional session limit; the other settings cannot be null.
    changes = {
        key: value
        for key, value in changes.items()
        if value is not None or key == "session_max_duration_days"
    }
    updated = await services.repositories.update(access.repo, changes)
    return JSONResponse(repository_json(updated))


@router.delete(
    REPO,
    status_code=204,
    summary="Delete a repository (soft delete; the name can be reused)",
    responses=error_responses(404),
    dependencies=[repository_action(Action.DELETE_REPOSITORY)],
)
async def delete_repository(services: ServicesDep, access: AccessDep) -> Response:
    await services.repositories.delete(access.repo)
    # The repository's id is never reused: its secrets could no longer be read, only kept.
    await services.secrets.purge(SecretScope.repository(access.repo.id))
    return Response(status_code=204)
