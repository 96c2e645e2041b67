"""Lamina's upload extensions: small objects in one request, and many objects in one request.

The contract's upload takes three requests (``PUT /object`` for an upload URL, the bytes to
it, ``POST /object/finalize``). For small objects the requests, not the bytes, are the cost,
so a server that advertises them (``GET /api/v1/capabilities``,
:mod:`lamina_server.api.capabilities`) also takes:

- ``POST .../object/upload?session_id=&path=``: the object's bytes as the body, its
  attributes as the JSON of one ``X-Lamina-Attributes`` header (``content_type``,
  ``checksum``, ``size_bytes``, ``metadata``: finalize's fields; all optional). Up to
  :data:`MAX_OBJECT_BYTES`. It answers as finalize does (201 ``{path, etag}``), once the object
  is staged durably.
- ``POST .../objects/upload?session_id=``: a POSIX tar archive (pax or ustar) of up to
  :data:`MAX_BATCH_OBJECTS` objects of up to :data:`MAX_OBJECT_BYTES` each; a member's path is
  the object's path, a pax ``LAMINA.attributes`` record its attributes (the same JSON);
  directory entries are skipped, links and devices refused (:mod:`lamina_server.api.archive`).
  Each object is authorized (``PutObject`` on its path, declared ``stream:path``) and stored as
  it is read (in bounded memory); then all of them are staged in one transaction. It answers
  201 ``{objects: [{path, etag}...]}`` in archive order. The session is checked once the first
  object is authorized, so that a caller who may write nothing learns nothing of it; a closed
  or unknown session fails the whole request, as ``PUT /object`` does. Its audit record
  (one, as for every request) lists the paths it staged in its details (``paths``).

**All or nothing.** A batch stages every object or none. Objects the server refuses (a bad
path or attributes, a checksum or size mismatch, a path the caller may not write, one too
large) do not stop the reading: the answer names each of them, ``failed: [{path, status,
code, message}]`` in the error envelope (each with the status and code the one-object upload
would answer), and stages nothing; its status is theirs when they share one, else 400
(``code: batch_failed``). A body that is not a readable archive is a 400 ``invalid_archive``.
A batch cut short (the client goes away, the server is killed) stages nothing either.

Both validate as the contract's upload does, with the same functions and the same errors
(:mod:`lamina_server.api.uploads`), store the bytes with the blob store's ``write`` and stage
them through :class:`~lamina_server.versioning.Staging`, as finalize does. They exist only
where the API process holds the object bytes: with a blob store clients reach directly (S3),
the bytes must not pass through it, so the capabilities document lists neither and both
answer 501 ``not_supported`` (as they do when ``upload_extensions`` is off). The one-request
put is served by the fast lane (``FAST_LANE``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from lamina_server.api.access import LaminaRoute, access_of, at, authorize_streamed
from lamina_server.api.access import repository_action as declare
from lamina_server.api.archive import ArchiveError, Member, members
from lamina_server.api.bodies import too_large
from lamina_server.api.deps import Services, get_services, query
from lamina_server.api.errors import (
    ApiError,
    api_error_for,
    bad_request,
    body_validation_failed,
    error_headers,
)
from lamina_server.api.params import NON_EMPTY, PATH_RULES, PATH_SCHEMA, REPO
from lamina_server.api.request_ids import ensure_request_id
from lamina_server.api.schemas import ErrorBody, error_responses
from lamina_server.api.uploads import (
    ObjectAttributes,
    ObjectWritten,
    check_written,
    new_entry,
    object_attributes,
    session_write,
    stage_written,
)
from lamina_server.api.validation import DEFAULT_CONTENT_TYPE, require, validate_path
from lamina_server.authz import Action
from lamina_server.governance.audit import AuditEvent
from lamina_server.storage import journal
from lamina_server.storage.blobs import BlobError, BlobInfo, BlobMismatch
from lamina_server.versioning import Claim, Entry

router = APIRouter(tags=["Objects"], route_class=LaminaRoute)

MAX_OBJECT_BYTES = 1024 * 1024  # the most one object of either extension may hold
MAX_BATCH_OBJECTS = 10_000  # the most objects one batch may carry
ATTRIBUTES_HEADER = "x-lamina-attributes"
# A pax header holds a path (1 KiB) and the attributes (metadata: 8 KiB, as escaped JSON).
_MAX_PAX_HEADER = 64 * 1024
_ATTRIBUTES_SCHEMA = ObjectAttributes.model_json_schema()


def enabled(services: Services) -> bool:
    """Whether this server offers the extensions: configured so, and holding the bytes."""
    return services.config.upload_extensions and services.presigner is None


def _refuse_unless_enabled(services: Services) -> None:
    if not enabled(services):
        why = (
            "its blob store is reached directly"
            if services.presigner is not None
            else "they are turned off"
        )
        raise ApiError(
            501,
            "not_supported",
            f"this server offers no one-request or batched uploads ({why}): upload through "
            "PUT .../object, the upload URL, and POST .../object/finalize",
        )


def _attributes(raw: str | bytes | None) -> tuple[str | None, int | None, str, dict[str, str]]:
    """The validated attributes of ``X-Lamina-Attributes`` or a ``LAMINA.attributes`` record."""
    if raw is None:
        return None, None, DEFAULT_CONTENT_TYPE, {}
    try:
        body = ObjectAttributes.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise body_validation_failed(exc) from None
    return object_attributes(body)


def _declared_length(request: Request) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_OBJECT_BYTES:
        raise too_large(MAX_OBJECT_BYTES)


async def _bounded(request: Request) -> Any:
    received = 0
    async for chunk in request.stream():
        if chunk:
            received += len(chunk)
            if received > MAX_OBJECT_BYTES:
                raise too_large(MAX_OBJECT_BYTES)
            yield chunk


async def _written(services: Services, address: str, chunks: Any) -> BlobInfo:
    """The blob ``chunks`` stored at ``address``; nothing stays pending if it fails."""
    try:
        return await services.blobs.write(address, chunks)
    except BaseException:
        await services.blobs.discard(address)
        raise


_SESSION_PARAMETER = {
    "name": "session_id",
    "in": "query",
    "required": True,
    "description": "Session ID",
    "schema": {"type": "string", **NON_EMPTY},
}
_BYTES = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    f"{REPO}/object/upload",
    status_code=201,
    summary="Lamina extension: upload a small object and stage it, in one request",
    response_model=ObjectWritten,
    responses=error_responses(400, 404, 409, 413, 501),
    openapi_extra={
        "parameters": [
            _SESSION_PARAMETER,
            {
                "name": "path",
                "in": "query",
                "required": True,
                "description": f"Object path: {PATH_RULES}",
                "schema": {"type": "string", **PATH_SCHEMA},
            },
            {
                "name": "X-Lamina-Attributes",
                "in": "header",
                "required": False,
                "description": "The object's attributes as JSON, finalize's fields: "
                "content_type, checksum (hex MD5), size_bytes, metadata",
                "content": {"application/json": {"schema": _ATTRIBUTES_SCHEMA}},
            },
        ],
        "requestBody": {
            "required": True,
            "description": f"The object's bytes, at most {MAX_OBJECT_BYTES}",
            "content": {"application/octet-stream": _BYTES},
        },
    },
    dependencies=[declare(Action.PUT_OBJECT, path="query:path")],
)
async def upload_object(request: Request) -> JSONResponse:
    services, access, session_id, path = await session_write(request)
    _refuse_unless_enabled(services)
    checksum, size_bytes, content_type, metadata = _attributes(
        request.headers.get(ATTRIBUTES_HEADER)
    )
    _declared_length(request)
    repo = access.repo
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    info = await _written(services, address, _bounded(request))
    try:
        check_written(info, size_bytes, checksum)
    except BlobMismatch as exc:
        await services.blobs.discard(address)
        raise api_error_for(exc) from None
    return await stage_written(
        services, repo, session_id, path, info, content_type, metadata, claim=Claim.INTERNAL
    )


# Served by the app's fast lane.
FAST_LANE = (upload_object,)


class BatchWritten(BaseModel):
    objects: list[ObjectWritten]


class FailedObject(BaseModel):
    path: str
    status: int
    code: str
    message: str


class BatchFailed(ErrorBody):
    failed: list[FailedObject] = Field(
        default_factory=list,
        description="With code batch_failed: each object refused, with the status and code "
        "its one-object upload would answer (nothing was staged)",
    )


_BATCH_ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(501),
    **{
        status: {**response, "model": BatchFailed}
        for status, response in error_responses(400, 403, 404, 413).items()
        if status != 401
    },
}


class _Batch:
    """The objects of one batched upload, as they are read: stored (pending) or refused."""

    def __init__(self, request: Request, services: Services, session_id: str) -> None:
        self.request = request
        self.services = services
        self.repo = access_of(request).repo
        self.session_id = session_id
        self.stored: list[tuple[str, Entry]] = []
        self.failed: list[FailedObject] = []
        self._session_checked = False

    async def add(self, member: Member) -> None:
        try:
            self.stored.append(await self._store(member))
        except (ApiError, BlobError) as exc:
            error = api_error_for(exc)
            if error.code == "organization_not_found":
                raise error from None  # a non-member learns nothing, not even of the session
            self.failed.append(
                FailedObject(
                    path=member.path,
                    status=error.status_code,
                    code=error.code,
                    message=error.message,
                )
            )

    async def _store(self, member: Member) -> tuple[str, Entry]:
        """One member, validated, authorized and stored (pending): its path and entry.
        :class:`ApiError` (or a blob error) says why it is refused; its bytes are then
        skipped, or were stored and discarded. The session is checked once, after the first
        authorized object (so that a caller without rights learns nothing of it); a closed
        or unknown session fails the whole request."""
        path = validate_path(member.path)
        if member.kind != "file":
            raise bad_request(
                "only regular files become objects (this member is a link or a device)",
                "not_a_file",
            )
        checksum, size_bytes, content_type, metadata = _attributes(member.attributes)
        if member.size > MAX_OBJECT_BYTES:
            raise ApiError(
                413,
                "request_too_large",
                f"the object is {member.size} bytes; the limit is {MAX_OBJECT_BYTES}",
            )
        await authorize_streamed(self.request, Action.PUT_OBJECT, path)
        if not self._session_checked:
            try:
                await self.services.versions.open_session(self.repo.id, self.session_id)
            except Exception as exc:
                raise _WholeRequest(exc) from None
            self._session_checked = True
        address = self.services.blobs.new_address()
        info = await _written(self.services, address, member.data())
        try:
            check_written(info, size_bytes, checksum)
        except BlobMismatch:
            await self.services.blobs.discard(address)
            raise
        return path, new_entry(info, content_type, metadata)


class _WholeRequest(Exception):
    """An error that fails the whole batch, not one object (the session's)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _failure_answer(request: Request, failed: list[FailedObject]) -> JSONResponse:
    statuses = {failure.status for failure in failed}
    status = statuses.pop() if len(statuses) == 1 else 400
    listed = "; ".join(f"{failure.path!r}: {failure.message}" for failure in failed[:5])
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    message = f"{len(failed)} object(s) refused, nothing staged: {listed}{more}"
    code = "batch_failed"
    body = {
        "message": message,
        "code": code,
        "request_id": ensure_request_id(request.scope),
        "failed": [failure.model_dump() for failure in failed],
    }
    return JSONResponse(body, status_code=status, headers=error_headers(code, message))


@router.post(
    f"{REPO}/objects/upload",
    status_code=201,
    summary="Lamina extension: upload many objects in one tar archive and stage them all",
    response_model=BatchWritten,
    responses=_BATCH_ERRORS,
    openapi_extra={
        "parameters": [_SESSION_PARAMETER],
        "requestBody": {
            "required": True,
            "description": "A POSIX tar archive (pax or ustar): each regular file is an "
            f"object at its member path (at most {MAX_OBJECT_BYTES} bytes, at most "
            f"{MAX_BATCH_OBJECTS} objects); a pax 'LAMINA.attributes' record holds its "
            "attributes as X-Lamina-Attributes does",
            "content": {"application/x-tar": _BYTES},
        },
    },
    dependencies=[declare(at(Action.PUT_OBJECT, "stream:path"))],
)
async def upload_objects(request: Request) -> JSONResponse:
    services = await get_services(request)
    session_id = require(query(request).get("session_id", ""), "session_id")
    _refuse_unless_enabled(services)
    batch = _Batch(request, services, session_id)
    staged: list[Entry] = []
    try:
        count = 0
        async for member in members(request.stream(), max_header=_MAX_PAX_HEADER):
            if member.kind == "directory":
                continue
            count += 1
            if count > MAX_BATCH_OBJECTS:
                raise ApiError(
                    413, "request_too_large", f"a batch holds at most {MAX_BATCH_OBJECTS} objects"
                )
            await batch.add(member)
        if batch.failed:
            return _failure_answer(request, batch.failed)
        if batch.stored:
            held = journal.pending()
            with journal.carrying(_naming_objects(held, [path for path, _ in batch.stored])):
                staged = await services.staging.put_all(batch.repo.id, session_id, batch.stored)
            journal.mark_written(held)
    except _WholeRequest as exc:
        raise exc.error from None
    except ArchiveError as exc:
        raise bad_request(
            f"the body is not a readable tar archive: {exc}", "invalid_archive"
        ) from None
    finally:
        if not staged:  # the pending blobs go (discarding a claimed one leaves it)
            for _, entry in batch.stored:
                await services.blobs.discard(entry.address)
    objects = [
        {"path": path, "etag": entry.etag}
        for (path, _), entry in zip(batch.stored, staged, strict=True)
    ]
    return JSONResponse({"objects": objects}, status_code=201)


def _naming_objects(held: tuple[Any, ...], paths: list[str]) -> list[Any]:
    """The request's journal entries, its audit record naming in its details the paths of the
    objects it staged (one record for the request, as for every request)."""
    return [
        replace(entry, details={**entry.details, "paths": paths})
        if isinstance(entry, AuditEvent)
        else entry
        for entry in held
    ]
