"""Import jobs: start one (from an attached connector, or from another repository the caller
may read) and read its state. A job runs in the background and lands as one commit, or nothing
(:mod:`lamina_server.imports.runner`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, at, check_action, repository_action
from lamina_server.api.errors import bad_request
from lamina_server.api.params import REPO, ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action, Resource
from lamina_server.imports.jobs import ImportJobRecord

router = APIRouter(tags=["Import"], route_class=LaminaRoute)

IMPORTS = f"{REPO}/import"
IMPORT = f"{IMPORTS}/{{job_id}}"


class StartImportRequest(BaseModel):
    """Exactly one of ``connector_id`` or (``source_organization`` + ``source_repository``)."""

    model_config = ConfigDict(extra="ignore")
    connector_id: str | None = Field(default=None, max_length=64)
    source_organization: str | None = Field(default=None, max_length=256)
    source_repository: str | None = Field(default=None, max_length=256)
    destination_path: str = Field(
        max_length=1024, description="The folder the objects land under ('' : the root)"
    )
    source_prefix: str = Field(
        default="", max_length=1024, description="The folder of the source to import"
    )
    commit_message: str | None = Field(default=None, max_length=1000)

    def check_source(self) -> None:
        """Exactly one source; 400 naming what is wrong otherwise."""
        by_repository = self.source_organization is not None or self.source_repository is not None
        if (self.connector_id is not None) == by_repository:
            raise bad_request(
                "give exactly one of connector_id or (source_organization and source_repository)"
            )
        if by_repository and not (self.source_organization and self.source_repository):
            raise bad_request("source_organization and source_repository go together")


class StartedImport(BaseModel):
    job_id: str


class ImportJob(BaseModel):
    id: str
    repository_id: str
    connector_id: str | None
    source_repository_id: str | None
    source_organization: str
    source_repository: str
    source_commit_id: str | None = Field(description="Lamina: the source commit imported")
    destination_path: str
    source_prefix: str
    commit_message: str
    status: Literal["pending", "running", "completed", "failed", "canceled"]
    objects_imported: int
    objects_unchanged: int = Field(
        description="Lamina: objects left as they were (unchanged since an earlier import)"
    )
    commit_id: str | None
    error: str | None
    error_code: str | None = Field(description="Lamina: what kind of failure (see docs)")
    created_by_type: Literal["user", "role", "agent"]
    created_by: str
    created_at: datetime
    updated_at: datetime


def job_json(record: ImportJobRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "repository_id": record.repository_id,
        "connector_id": record.connector_id,
        "source_repository_id": record.source_repository_id,
        "source_organization": record.source_organization,
        "source_repository": record.source_repository,
        "source_commit_id": record.source_commit_id,
        "destination_path": record.destination_path,
        "source_prefix": record.source_prefix,
        "commit_message": record.commit_message,
        "status": record.status,
        "objects_imported": record.objects_imported,
        "objects_unchanged": record.objects_unchanged,
        "commit_id": record.commit_id,
        "error": record.error,
        "error_code": record.error_code,
        "created_by_type": record.created_by_type,
        "created_by": record.created_by,
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    }


@router.post(
    IMPORTS,
    status_code=202,
    summary="Start an import job (from an attached connector, or from another repository)",
    responses={202: {"model": StartedImport}, **error_responses(400, 403, 404, 410, 423)},
    dependencies=[
        repository_action(Action.IMPORT_DATA, at(Action.PUT_OBJECT, "body:destination_path"))
    ],
)
async def start_import(
    body: StartImportRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    body.check_source()
    if body.connector_id is not None:
        record = await services.imports.start_from_connector(
            access.repo,
            access.caller,
            body.connector_id,
            destination_path=body.destination_path,
            source_prefix=body.source_prefix,
            commit_message=body.commit_message,
        )
    else:
        assert body.source_organization is not None and body.source_repository is not None
        if (body.source_organization, body.source_repository) == (
            access.org.name,
            access.repo.name,
        ):
            raise bad_request("a repository cannot import from itself")
        org = await services.identity.organization(body.source_organization)
        source = Resource(org, body.source_repository)
        # The caller must be allowed to read the source (audited and refused as the prelude
        # does: a 404 when it may not learn that the organization exists).
        for action in (Action.LIST_OBJECTS, Action.GET_OBJECT):
            target = source.at(body.source_prefix) if body.source_prefix else source
            await check_action(services, access.caller, action, target, access.epoch)
        repository = await services.repositories.get(org, body.source_repository)
        record = await services.imports.start_from_repository(
            access.repo,
            access.caller,
            repository,
            destination_path=body.destination_path,
            source_prefix=body.source_prefix,
            commit_message=body.commit_message,
        )
    return JSONResponse({"job_id": record.id}, status_code=202)


@router.get(
    IMPORT,
    summary="Get an import job's state",
    responses={200: {"model": ImportJob}, **error_responses(404)},
    dependencies=[repository_action(Action.IMPORT_DATA)],
)
async def get_import(job_id: str, services: ServicesDep, access: AccessDep) -> JSONResponse:
    return JSONResponse(job_json(await services.imports.get(access.repo.id, job_id)))
