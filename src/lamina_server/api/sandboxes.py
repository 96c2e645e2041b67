"""Sandboxes: create, list, get, status, logs, cancel (the rollback path) and finish (the commit
path of a service sandbox). The websockets are :mod:`lamina_server.api.sandbox_streams`."""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import (
    AccessDep,
    LaminaRoute,
    access_of,
    authorize_also,
    repository_action,
)
from lamina_server.api.deps import get_services, query
from lamina_server.api.errors import ApiError, bad_request
from lamina_server.api.pagination import envelope
from lamina_server.api.params import REPO, Pages, ServicesDep
from lamina_server.api.schemas import PaginationBody, error_responses
from lamina_server.api.validation import validate_prefix
from lamina_server.authz import Action
from lamina_server.repositories import RepositoryRecord
from lamina_server.sandboxes.models import (
    DEFAULT_MOUNTPOINT,
    DEFAULT_TIMEOUT_SECONDS,
    INTERACTIVE,
    MODES,
    ONE_SHOT,
    RunAs,
    SandboxRecord,
    SandboxRequest,
)

router = APIRouter(tags=["Sandboxes"], route_class=LaminaRoute)

SANDBOX = f"{REPO}/sandboxes/{{sandbox_id}}"
SandboxId = Annotated[str, Path(description="Sandbox ID")]

MAX_ENV_VARS = 256
MAX_WAIT = 30.0  # seconds a status request may wait for a change
MAX_COMMAND_ARGS = 4096
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Where the repository may not be mounted: over the image's system folders or the sandbox's own.
_RESERVED = {"proc", "dev", "sys", "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"}


class RunAsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="agent | role")
    id: str


class CreateSandboxBody(BaseModel):
    """``image`` may be omitted: the server's default image. ``interactive: true`` (the old
    spelling) means ``mode: "interactive"``."""

    model_config = ConfigDict(extra="ignore")
    image: str | None = None
    command: list[str] | None = None
    mountpoint: str | None = None
    path_prefix: str | None = None
    timeout_seconds: int | None = Field(None, ge=1)
    env_vars: dict[str, str] | None = None
    run_as: RunAsBody | None = None
    mode: str | None = None
    interactive: bool | None = None


class CreateSandboxResponse(BaseModel):
    sandbox_id: str


class SandboxStatusBody(BaseModel):
    status: str
    status_reason: str
    exit_code: int | None
    commit_id: str
    web_url: str
    error_message: str


class SandboxBody(SandboxStatusBody):
    id: str
    repository_id: str
    image: str
    command: list[str]
    mountpoint: str
    path_prefix: str
    timeout_seconds: int | None
    mode: str
    env_vars: dict[str, str]
    volume_name: str
    container_id: str
    created_by_type: str
    created_by: str
    created_at: str
    updated_at: str
    finished_at: str | None


class SandboxList(BaseModel):
    results: list[SandboxBody]
    pagination: PaginationBody


class MessageBody(BaseModel):
    message: str


# --- validation -------------------------------------------------------------------------------


def _mountpoint(value: str | None) -> str:
    if value is None or value == "":
        return DEFAULT_MOUNTPOINT
    if not value.startswith("/") or "\x00" in value or len(value) > 1024:
        raise bad_request("mountpoint: must be an absolute path (e.g. /sandbox)")
    normal = posixpath.normpath(value)
    if ".." in value.split("/") or normal == "/":
        raise bad_request(f"mountpoint: {value!r} is not a folder the repository can be mounted at")
    first = normal.split("/")[1]
    if first in _RESERVED:
        raise bad_request(f"mountpoint: /{first} belongs to the image; mount elsewhere")
    return normal


def _timeout(value: int | None, repository: RepositoryRecord) -> int:
    ceiling = (
        repository.session_max_duration_days * 86400
        if repository.session_max_duration_days
        else None
    )
    if value is None:
        return min(DEFAULT_TIMEOUT_SECONDS, ceiling) if ceiling else DEFAULT_TIMEOUT_SECONDS
    if ceiling is not None and value > ceiling:
        raise bad_request(
            f"timeout_seconds: {value} is longer than the repository's session maximum "
            f"({ceiling} seconds)"
        )
    return value


def _env(values: dict[str, str] | None) -> dict[str, str]:
    values = values or {}
    if len(values) > MAX_ENV_VARS:
        raise bad_request(f"env_vars: at most {MAX_ENV_VARS} variables")
    for name, value in values.items():
        if not _ENV_NAME.fullmatch(name):
            raise bad_request(f"env_vars: {name!r} is not a valid variable name")
        if "\x00" in value:
            raise bad_request(f"env_vars: the value of {name} contains NUL")
    return dict(values)


def _command(values: list[str] | None) -> tuple[str, ...]:
    values = values or []
    if len(values) > MAX_COMMAND_ARGS or any("\x00" in value for value in values):
        raise bad_request(f"command: at most {MAX_COMMAND_ARGS} arguments, none containing NUL")
    if values and not values[0]:
        raise bad_request("command: the program (first element) must not be empty")
    return tuple(values)


def _run_as(body: RunAsBody | None) -> RunAs | None:
    if body is None:
        return None
    if body.type not in ("agent", "role"):
        raise bad_request("run_as.type: must be 'agent' or 'role'")
    if not _UUID.fullmatch(body.id):
        raise bad_request("run_as.id: must be a UUID")
    return RunAs(body.type, body.id.lower())


def sandbox_request(
    body: CreateSandboxBody, repository: RepositoryRecord, default_image: str
) -> SandboxRequest:
    """A create request, validated; a 400 names the first field that is wrong."""
    mode = body.mode or (INTERACTIVE if body.interactive else ONE_SHOT)
    if mode not in MODES:
        raise bad_request(f"mode: must be one of {', '.join(MODES)}, not {mode!r}")
    image = body.image if body.image is not None else default_image
    if not image.strip() or len(image) > 255:
        raise bad_request("image: must be a non-empty image name of at most 255 characters")
    prefix = validate_prefix(body.path_prefix, "path_prefix").strip("/")
    return SandboxRequest(
        image=image,
        command=_command(body.command),
        mountpoint=_mountpoint(body.mountpoint),
        path_prefix=f"{prefix}/" if prefix else "",
        timeout_seconds=_timeout(body.timeout_seconds, repository),
        env_vars=_env(body.env_vars),
        mode=mode,
        run_as=_run_as(body.run_as),
    )


# --- bodies -----------------------------------------------------------------------------------


def status_json(record: SandboxRecord) -> dict[str, Any]:
    return asdict(record.outcome)  # the status body's fields are the outcome's


def sandbox_json(record: SandboxRecord) -> dict[str, Any]:
    request = record.request
    return {
        "id": record.id,
        "repository_id": record.repository_id,
        "image": request.image,
        "command": list(request.command),
        "mountpoint": request.mountpoint,
        "path_prefix": request.path_prefix,
        "timeout_seconds": request.timeout_seconds,
        "mode": request.mode,
        "env_vars": dict(request.env_vars),
        **status_json(record),
        "volume_name": record.session_id or "",
        "container_id": record.id,
        "created_by_type": record.created_by_type,
        "created_by": record.created_by,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }


# --- routes -----------------------------------------------------------------------------------


@router.post(
    f"{REPO}/sandboxes",
    status_code=201,
    summary="Create and run a sandbox over the repository (in a session of its own)",
    responses={201: {"model": CreateSandboxResponse}, **error_responses(400, 404, 503)},
    dependencies=[repository_action(Action.CREATE_SANDBOX)],
)
async def create_sandbox(
    body: CreateSandboxBody, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    sandboxes = services.sandboxes
    request = sandbox_request(body, access.repo, sandboxes.default_image)
    if request.run_as is not None:
        # Running as an agent or a role acts with its policies and secrets: the caller must
        # be allowed to manage that principal, which must be of this organization.
        run_as = request.run_as
        await authorize_also(
            access,
            services,
            Action.MANAGE_AGENTS if run_as.type == "agent" else Action.MANAGE_ROLES,
        )
        machine = await services.identity.machines.get_by_id(run_as.type, access.org.id, run_as.id)
        request = replace(request, run_as=replace(run_as, name=machine.name))
    if sandboxes.unavailable:
        raise ApiError(
            503, "sandboxes_unavailable", f"sandboxes cannot run: {sandboxes.unavailable}"
        )
    record = await sandboxes.create(access.repo.id, access.caller, request)
    return JSONResponse({"sandbox_id": record.id}, status_code=201)


@router.get(
    f"{REPO}/sandboxes",
    summary="List the repository's sandboxes, newest first",
    response_model=SandboxList,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.LIST_SANDBOXES)],
)
async def list_sandboxes(services: ServicesDep, access: AccessDep, pages: Pages) -> JSONResponse:
    records, has_more = await services.sandboxes.records.page(
        access.repo.id, after=pages.after, amount=pages.amount
    )
    return JSONResponse(
        envelope(
            [sandbox_json(record) for record in records],
            has_more=has_more,
            next_offset=records[-1].id if has_more else None,
            amount=pages.amount,
        )
    )


@router.get(
    SANDBOX,
    summary="A sandbox's full record",
    response_model=SandboxBody,
    responses=error_responses(404),
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def get_sandbox(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return JSONResponse(sandbox_json(await services.sandboxes.get(access.repo.id, sandbox_id)))


@router.get(
    f"{SANDBOX}/status",
    summary="Where the sandbox's status machine is",
    response_model=SandboxStatusBody,
    responses=error_responses(404),
    openapi_extra={
        "parameters": [
            {
                "name": "sandbox_id",
                "in": "path",
                "required": True,
                "description": "Sandbox ID",
                "schema": {"type": "string"},
            },
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": "Lamina extension: answer when the status changes (starting → "
                f"running, running → ended) or after this many seconds (at most {MAX_WAIT:g}), "
                "whichever comes first, instead of at once",
                "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT},
            },
            {
                "name": "seen",
                "in": "query",
                "required": False,
                "description": "Lamina extension, with wait: the status the client last saw; "
                "a sandbox already past it is answered at once",
                "schema": {"type": "string"},
            },
        ]
    },
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def sandbox_status(request: Request) -> JSONResponse:
    """Polled while a client waits for a sandbox: served by the fast lane (``FAST_LANE``), after
    the same prelude, and answered from memory while the sandbox is live. With ``wait`` it
    answers when the status changes, so a waiting client needs no polling."""
    services, access = await get_services(request), access_of(request)
    sandbox_id = request.path_params["sandbox_id"]
    wait = query(request).get("wait")
    if wait is not None:
        try:
            seconds = float(wait)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= MAX_WAIT:
            raise bad_request(f"wait: must be a number of seconds in (0, {MAX_WAIT:g}]")
        await services.sandboxes.wait_for_change(
            access.repo.id, sandbox_id, seconds, seen=query(request).get("seen")
        )
    return JSONResponse(status_json(await services.sandboxes.get(access.repo.id, sandbox_id)))


@router.delete(
    SANDBOX,
    status_code=202,
    summary="Cancel a sandbox: its processes are killed and nothing it changed lands",
    responses={202: {"model": MessageBody}, **error_responses(404, 409)},
    dependencies=[repository_action(Action.CANCEL_SANDBOX)],
)
async def cancel_sandbox(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    await services.sandboxes.cancel(access.repo.id, sandbox_id)
    return JSONResponse({"message": f"sandbox {sandbox_id} is being cancelled"}, status_code=202)


@router.post(
    f"{SANDBOX}/finish",
    status_code=202,
    summary="Finish a service sandbox: what it changed is committed (poll /status)",
    responses={202: {"model": MessageBody}, **error_responses(400, 404, 409)},
    dependencies=[repository_action(Action.FINISH_SANDBOX)],
)
async def finish_sandbox(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    await services.sandboxes.finish(access.repo.id, sandbox_id)
    return JSONResponse({"message": f"sandbox {sandbox_id} is finishing"}, status_code=202)


async def _log(services: ServicesDep, access: AccessDep, sandbox_id: str) -> StreamingResponse:
    stream = await services.sandboxes.logs(access.repo.id, sandbox_id)
    if stream is None:
        raise ApiError(410, "logs_gone", f"the logs of sandbox {sandbox_id!r} are gone")
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8")


_LOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    **error_responses(404, 410),
}


@router.get(
    f"{SANDBOX}/logs/stdout",
    summary="The main command's stdout and stderr, merged; followed while the sandbox runs",
    responses=_LOG_RESPONSES,
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def sandbox_stdout(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> StreamingResponse:
    return await _log(services, access, sandbox_id)


@router.get(
    f"{SANDBOX}/stdout",
    summary="The merged log under its older names (/stdout, /combined), as older clients ask",
    responses=_LOG_RESPONSES,
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
@router.get(
    f"{SANDBOX}/combined",
    summary="The merged log under its older names (/stdout, /combined), as older clients ask",
    responses=_LOG_RESPONSES,
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def sandbox_legacy_log(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> StreamingResponse:
    return await _log(services, access, sandbox_id)


@router.get(
    f"{SANDBOX}/stderr",
    summary="Empty, as older clients ask for it: stderr is merged into the log, in order",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(404),
    },
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def sandbox_legacy_stderr(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> Response:
    await services.sandboxes.get(access.repo.id, sandbox_id)
    return Response(b"", media_type="text/plain; charset=utf-8")


@router.get(
    f"{SANDBOX}/logs/network",
    summary="The sandbox's outbound requests (NDJSON); empty: sandboxes have no network",
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **error_responses(404),
    },
    dependencies=[repository_action(Action.GET_SANDBOX)],
)
async def sandbox_network(
    sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> Response:
    await services.sandboxes.get(access.repo.id, sandbox_id)
    return Response(b"", media_type="application/x-ndjson")


FAST_LANE = (sandbox_status,)
