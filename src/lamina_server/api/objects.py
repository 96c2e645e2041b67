"""Objects, the control plane's reads and session edits: read (a 307 to a presigned download
URL), HEAD, list, copy and delete. Uploads are :mod:`lamina_server.api.uploads`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api import data
from lamina_server.api.access import Access, AccessDep, LaminaRoute, at, repository_action
from lamina_server.api.deps import Services
from lamina_server.api.errors import bad_request, not_found
from lamina_server.api.pagination import page_envelope
from lamina_server.api.params import (
    PATH_RULES,
    PATH_SCHEMA,
    REPO,
    Delimiter,
    ObjectPath,
    Pages,
    Prefix,
    ReadSession,
    Ref,
    ServicesDep,
    SessionId,
)
from lamina_server.api.retention import check_readable
from lamina_server.api.schemas import (
    ListingEntryBody,
    PaginationBody,
    error_responses,
    listing_item_json,
)
from lamina_server.api.validation import require, validate_delimiter, validate_path, validate_prefix
from lamina_server.authz import Action
from lamina_server.versioning import Entry

router = APIRouter(tags=["Objects"], route_class=LaminaRoute)

MAX_DELETE_PATHS = 1000
# Where a read answers, and the object's metadata, as HEAD /object also answers them.
_LOCATION = {
    "Location": {
        "description": "The presigned download URL (honours Range)",
        "required": True,
        "schema": {"type": "string"},
    }
}
_OBJECT_HEADERS = {
    "ETag": {
        "description": 'The object\'s "<md5>"',
        "required": True,
        "schema": {"type": "string"},
    },
    "Content-Type": {"required": True, "schema": {"type": "string"}},
    "Content-Length": {"required": True, "schema": {"type": "integer", "minimum": 0}},
    "Last-Modified": {"required": True, "schema": {"type": "string"}},
    "Accept-Ranges": {"required": True, "schema": {"type": "string", "enum": ["bytes"]}},
}


class CopyResult(BaseModel):
    source_path: str
    destination_path: str


class DeleteObjectsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # The handler checks the count and each path (invalid_path); the schema documents it.
    paths: list[Annotated[str, Field(json_schema_extra=PATH_SCHEMA)]] = Field(
        description=f"1-{MAX_DELETE_PATHS} object paths, each {PATH_RULES}",
        json_schema_extra={"minItems": 1, "maxItems": MAX_DELETE_PATHS},
    )


class DeleteObjectsResult(BaseModel):
    deleted: int


class ObjectList(BaseModel):
    results: list[ListingEntryBody]
    pagination: PaginationBody


async def _view(
    services: Services, access: Access, session_id: str | None, ref: str | None
) -> tuple[str | None, str | None]:
    """The session or commit a read names (410 for a commit beyond retention)."""
    session_id, ref = session_id or None, ref or None
    if session_id is not None and ref is not None:
        raise bad_request("session_id and ref are mutually exclusive; pass at most one")
    await check_readable(services, access.repo, ref)
    return session_id, ref


# --- reads ----------------------------------------------------------------------------------


async def _read_entry(
    services: Services, access: Access, path: str, session_id: str | None, ref: str | None
) -> Entry:
    """The entry at ``path`` in the view a read names: a session, a commit, or HEAD."""
    validate_path(path)
    session, commit = await _view(services, access, session_id, ref)
    return await services.versions.get_entry(access.repo.id, path, session_id=session, ref=commit)


@router.get(
    f"{REPO}/object",
    status_code=307,
    summary="Read an object: 307 redirect to a presigned download URL",
    response_class=Response,
    responses={
        307: {"description": "Redirect to the object's bytes", "headers": _LOCATION},
        **error_responses(400, 404, 410),
    },
    dependencies=[repository_action(Action.GET_OBJECT, path="query:path")],
)
async def get_object(
    request: Request,
    path: ObjectPath,
    services: ServicesDep,
    access: AccessDep,
    session_id: ReadSession = None,
    ref: Ref = None,
) -> Response:
    entry = await _read_entry(services, access, path, session_id, ref)
    location = data.download_url(request, services, entry)
    return Response(
        status_code=307, headers={"Location": location, "Cache-Control": "private, no-store"}
    )


@router.head(
    f"{REPO}/object",
    summary="An object's metadata as headers (ETag, Content-Type, Content-Length, X-Tilde-Meta-*)",
    response_class=Response,
    responses={
        200: {
            "description": "The object exists; its user metadata as X-Tilde-Meta-<key> headers",
            "headers": _OBJECT_HEADERS,
        },
        **error_responses(400, 404, 410),
    },
    dependencies=[repository_action(Action.GET_OBJECT, path="query:path")],
)
async def head_object(
    path: ObjectPath,
    services: ServicesDep,
    access: AccessDep,
    session_id: ReadSession = None,
    ref: Ref = None,
) -> Response:
    entry = await _read_entry(services, access, path, session_id, ref)
    response = Response(
        headers={
            "ETag": f'"{entry.etag}"',
            "Content-Type": entry.content_type,
            "Content-Length": str(entry.size),
            "Last-Modified": data.http_date(entry.last_modified),
            "Accept-Ranges": "bytes",
        }
    )
    # Raw bytes: user metadata values are UTF-8, which Starlette's latin-1 headers cannot carry.
    response.raw_headers.extend(
        (f"x-tilde-meta-{key}".encode("ascii"), value.encode("utf-8"))
        for key, value in entry.metadata.items()
    )
    return response


@router.get(
    f"{REPO}/objects",
    summary="List objects (latest commit, a commit, or a session's view)",
    response_model=ObjectList,
    responses=error_responses(400, 404, 410),
    dependencies=[repository_action(Action.LIST_OBJECTS)],
)
async def list_objects(
    services: ServicesDep,
    access: AccessDep,
    pages: Pages,
    session_id: ReadSession = None,
    ref: Ref = None,
    prefix: Prefix = None,
    delimiter: Delimiter = None,
) -> JSONResponse:
    session, commit = await _view(services, access, session_id, ref)
    prefix, delim = validate_prefix(prefix), validate_delimiter(delimiter)
    page = await services.versions.list_objects(
        access.repo.id,
        session_id=session,
        ref=commit,
        prefix=prefix,
        delimiter=delim,
        after=pages.after,
        amount=pages.amount,
    )
    results = [listing_item_json(item) for item in page.items]
    return JSONResponse(page_envelope(results, page, pages.amount))


# --- copies and deletes ---------------------------------------------------------------------


@router.post(
    f"{REPO}/object/copy",
    status_code=201,
    summary="Copy an object within a session (metadata only: both share the bytes)",
    response_model=CopyResult,
    responses=error_responses(400, 404),
    dependencies=[
        repository_action(
            at(Action.GET_OBJECT, "query:source_path"),
            at(Action.PUT_OBJECT, "query:destination_path"),
        )
    ],
)
async def copy_object(
    session_id: SessionId,
    source_path: Annotated[
        str, Query(description="Path of the object to copy", json_schema_extra=PATH_SCHEMA)
    ],
    destination_path: Annotated[
        str, Query(description="Path of the copy", json_schema_extra=PATH_SCHEMA)
    ],
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    validate_path(source_path, "source_path")
    validate_path(destination_path, "destination_path")
    require(session_id, "session_id")
    await services.versions.stage_copy(access.repo.id, session_id, source_path, destination_path)
    return JSONResponse(
        {"source_path": source_path, "destination_path": destination_path}, status_code=201
    )


@router.delete(
    f"{REPO}/object",
    status_code=204,
    summary="Delete an object in a session (stages a tombstone)",
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.DELETE_OBJECT, path="query:path")],
)
async def delete_object(
    session_id: SessionId, path: ObjectPath, services: ServicesDep, access: AccessDep
) -> Response:
    validate_path(path)
    require(session_id, "session_id")
    if not await services.versions.stage_delete(access.repo.id, session_id, path):
        raise not_found(f"object {path!r} not found", "object_not_found")
    return Response(status_code=204)


@router.post(
    f"{REPO}/objects/delete",
    summary="Delete up to 1000 objects in a session; answers how many existed",
    response_model=DeleteObjectsResult,
    responses=error_responses(400, 404, 413),
    dependencies=[repository_action(Action.DELETE_OBJECT, path="body:paths")],
)
async def delete_objects(
    session_id: SessionId,
    body: DeleteObjectsRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    require(session_id, "session_id")
    if not 1 <= len(body.paths) <= MAX_DELETE_PATHS:
        raise bad_request(f"paths must list 1 to {MAX_DELETE_PATHS} paths, got {len(body.paths)}")
    paths = [validate_path(path, f"paths[{index}]") for index, path in enumerate(body.paths)]
    deleted = await services.versions.stage_delete_many(access.repo.id, session_id, paths)
    return JSONResponse({"deleted": deleted})
