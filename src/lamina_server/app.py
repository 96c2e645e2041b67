"""The ASGI application: services, request ids, the error envelope, and every router.

Every response carries ``X-Request-Id`` (the caller's, when it sent a sane one). Every error is
the contract's envelope ``{"message", "code", "request_id"}``: route errors (:class:`ApiError`),
versioning-engine errors, request validation, unknown routes and methods, and — logged with
their request id — unexpected exceptions.

The few routes every upload and download goes through (``FAST_LANE`` in the objects and data
modules) take the bare request, and :class:`LaminaApp` serves them ahead of all of FastAPI
(its telemetry, middleware stack, routing and dependency machinery), with the same request ids
and error envelopes. They stay registered as ordinary routes too: that is what documents them.
"""

from __future__ import annotations

import gc
import itertools
import logging
import re
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lamina_server import __version__, versioning
from lamina_server.api import commits, data, health, objects, organizations, repositories, sessions
from lamina_server.api.deps import Services
from lamina_server.api.schemas import ErrorBody
from lamina_server.api.signing import UrlSigner
from lamina_server.api.staging import CachingVersionStore, Staging
from lamina_server.bootstrap import bootstrap, load_or_create_secret
from lamina_server.config import ServerConfig
from lamina_server.errors import ApiError, merge_conflict
from lamina_server.identity import Identity, Repositories
from lamina_server.storage.blobs import LocalBlobStore
from lamina_server.storage.db import Database, sqlite_url

logger = logging.getLogger("lamina_server")

API_PREFIX = "/api/v1"
_MAX_REQUEST_ID = 128


# --- request ids and the last-resort 500 ------------------------------------------------------


def _request_ids() -> Iterator[str]:
    """Unique ids, 32 hex digits: a random per-process prefix and a counter (no syscall each)."""
    prefix = secrets.token_hex(8)
    return (f"{prefix}{count:016x}" for count in itertools.count())


def _incoming_request_id(scope: Scope) -> str | None:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= _MAX_REQUEST_ID and all(33 <= byte < 127 for byte in value):
                return value.decode("ascii")
            return None
    return None


def _assign_request_id(scope: Scope, ids: Iterator[str]) -> str:
    """The request's id — the caller's, when it sent a sane one, else the next of ``ids`` —
    recorded in the scope's state, where ``request_id_of`` finds it."""
    request_id = _incoming_request_id(scope) or next(ids)
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def error_response(
    status_code: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"message": message, "code": code, "request_id": request_id},
        status_code=status_code,
        headers=dict(headers or {}),
    )


def _log_unhandled(scope: Scope, request_id: str) -> None:
    """Logs the exception being handled, with its request."""
    logger.exception(
        "unhandled error in %s %s (request id %s)",
        scope.get("method"),
        scope.get("path"),
        request_id,
    )


def _internal_error(request_id: str) -> JSONResponse:
    """The last-resort 500 envelope: what went wrong stays in the log."""
    return error_response(500, "internal_error", "internal server error", request_id)


class RequestIdMiddleware:
    """Tags each request with an id (from ``ids``), echoes it as ``X-Request-Id`` and turns any
    exception that escaped the handlers into a logged 500 envelope (unless the response had
    already begun)."""

    def __init__(self, app: ASGIApp, ids: Iterator[str]) -> None:
        self.app = app
        self._ids = ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _assign_request_id(scope, self._ids)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            _log_unhandled(scope, request_id)
            if started:
                raise
            await _internal_error(request_id)(scope, receive, send_with_id)


def request_id_of(request: Request) -> str:
    request_id: str = getattr(request.state, "request_id", "")
    return request_id


# --- exception handlers -----------------------------------------------------------------------


def _versioning_error(exc: versioning.VersioningError) -> ApiError:
    """The one mapping from engine errors to HTTP; every router relies on it."""
    message = str(exc)
    if isinstance(exc, versioning.MergeConflict):
        return merge_conflict(exc.paths)
    if isinstance(exc, versioning.SessionNotFound):
        return ApiError(404, "session_not_found", message)
    if isinstance(exc, versioning.ObjectNotFound):
        return ApiError(404, "object_not_found", message)
    if isinstance(exc, versioning.RefNotFound):
        return ApiError(404, "commit_not_found", message)
    if isinstance(exc, versioning.SessionClosed):
        return ApiError(400, "session_closed", message)
    if isinstance(exc, versioning.RevertNotSupported):
        return ApiError(400, "revert_not_supported", message)
    if isinstance(exc, versioning.InvalidCursor):
        return ApiError(400, "invalid_cursor", message)
    return ApiError(409, "conflict", message)


_SOURCES = ("body", "query", "path", "header", "cookie")


def describe_validation_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``"<field>: <problem>"`` in the field names clients send."""
    loc = [str(part) for part in error.get("loc", ())]
    source = loc[0] if loc else ""
    field = ".".join(loc[1:] if source in _SOURCES else loc)
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        return "request body is not valid JSON"
    if source == "body" and not field:
        if kind == "missing":
            return "request body is required"
        return "request body must be a JSON object sent as application/json"
    if kind == "missing":
        problem = "is required"
    elif kind == "string_pattern_mismatch":
        problem = f"must match {ctx.get('pattern')}"
    else:
        problem = str(error.get("msg", "is invalid"))
        problem = problem.removeprefix("Value error, ")
        problem = problem[:1].lower() + problem[1:]
    return f"{field}: {problem}" if field else problem


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status_code, exc.code, exc.message, request_id_of(request), exc.headers
    )


async def _engine_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, versioning.VersioningError)
    return await _api_error(request, _versioning_error(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [describe_validation_error(error) for error in exc.errors()]
    message = "; ".join(dict.fromkeys(problems[:5])) or "invalid request"
    return error_response(400, "bad_request", message, request_id_of(request))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_METHOD_ORDER = {method.lower(): index for index, method in enumerate(_METHODS)}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, message, request_id_of(request), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette reports only the first route's)."""
    routes: list[BaseRoute] = request.app.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


# --- the fast lane ----------------------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]
LaneRoute = tuple[frozenset[str], re.Pattern[str], Endpoint]


class LaminaApp(FastAPI):
    """FastAPI with the fast lane in front: a request for one of the ``lane`` routes (methods,
    path pattern, endpoint) is served straight from here, ahead of FastAPI's telemetry, its
    middleware stack and its routing; every other request goes the ordinary way.

    A lane endpoint sees what FastAPI would give it (path parameters included); its responses
    carry the request id, and its :class:`ApiError` and versioning errors become the same
    envelopes as anywhere else, and anything else the logged 500 envelope.
    """

    lane: tuple[LaneRoute, ...] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.request_ids = _request_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            for methods, pattern, endpoint in self.lane:
                match = pattern.match(path) if method in methods else None
                if match is not None:
                    scope["app"] = self
                    scope["path_params"] = match.groupdict()
                    await self._serve(endpoint, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _assign_request_id(scope, self.request_ids)
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except ApiError as exc:
            response = await _api_error(request, exc)
        except versioning.VersioningError as exc:
            response = await _engine_error(request, exc)
        except ClientDisconnect:  # no one is left to answer
            logger.warning(
                "client disconnected before the end of its request: %s %s (request id %s)",
                scope["method"],
                scope["path"],
                request_id,
            )
            return
        except Exception:
            _log_unhandled(scope, request_id)
            response = _internal_error(request_id)
        response.raw_headers.append((b"x-request-id", request_id.encode("ascii")))
        try:
            await response(scope, receive, send)
        except Exception:
            _log_unhandled(scope, request_id)
            raise


def lane_routes(prefix: str, router: APIRouter, endpoints: Sequence[Endpoint]) -> list[LaneRoute]:
    """The routes of ``router`` (included under ``prefix``) that serve ``endpoints``."""
    found: list[LaneRoute] = []
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint in endpoints:
            pattern, _, _ = compile_path(prefix + route.path)
            found.append((frozenset(route.methods or ()), pattern, route.endpoint))
    if len(found) != len(endpoints):
        raise RuntimeError("a fast-lane endpoint is not a route of its router")
    return found


# --- OpenAPI ----------------------------------------------------------------------------------


def _operation_id(route: APIRoute) -> str:
    return route.name


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with validation failures documented as what they are: 400 envelopes."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    with warnings.catch_warnings():
        # A route serving GET and HEAD yields one id for both; they are made unique below.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=[{"url": API_PREFIX}],
        )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    bad_request = {
        "description": "Bad request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    seen_ids: set[str] = set()
    for path, operations in schema.get("paths", {}).items():
        # A route serving several methods lists them in set order; fix one order.
        ordered = sorted(operations.items(), key=lambda item: _METHOD_ORDER.get(item[0], 99))
        operations.clear()
        operations.update(ordered)
        for method, operation in operations.items():
            if operation.get("operationId") in seen_ids:
                operation["operationId"] = f"{operation['operationId']}_{method}"
            seen_ids.add(operation.get("operationId", ""))
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", bad_request)
            if path != "/healthz" and "401" in responses:
                operation["security"] = [{"BearerAuth": []}]
    # Paths are documented relative to the server URL (the /api/v1 prefix), as in the contract;
    # the few outside it (/healthz) say so with their own server entry.
    paths: dict[str, Any] = {}
    for path, item in schema.get("paths", {}).items():
        if path.startswith(f"{API_PREFIX}/"):
            paths[path.removeprefix(API_PREFIX)] = item
        else:
            paths[path] = {"servers": [{"url": "/"}], **item}
    schema["paths"] = paths
    app.openapi_schema = schema
    return schema


# --- services and the app factory -------------------------------------------------------------


def _tune_gc() -> None:
    """Once the server is up: what the process built so far (modules, app, services) lives as
    long as it does, so the cyclic garbage collector stops walking it on each full pass; and it
    runs less often, since a request allocates a few hundred objects that reference counting
    frees. Worth about 5-10% of the upload throughput (scripts/bench/put_throughput.py)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(config: ServerConfig) -> LaminaApp:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(config.database_url or sqlite_url(config.data_dir))
        try:
            await db.create_all()
            identity = Identity(db)
            await bootstrap(config, identity)
            versions = CachingVersionStore(db)
            blobs = LocalBlobStore(config.data_dir / "blobs")
            app.state.services = Services(
                config=config,
                db=db,
                versions=versions,
                blobs=blobs,
                identity=identity,
                signer=UrlSigner(load_or_create_secret(config.data_dir / "signing.key")),
                repositories=Repositories(db),
                staging=Staging(versions, blobs),
            )
            _tune_gc()
            yield
        finally:
            await db.dispose()

    app = LaminaApp(
        title="Lamina",
        version=__version__,
        description="The Lamina reference server: the Tilde API (/api/v1) and its extensions.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        generate_unique_id_function=_operation_id,
    )
    lane = lane_routes(API_PREFIX, objects.router, objects.FAST_LANE)
    lane += lane_routes("", data.router, data.FAST_LANE)
    app.lane = tuple(lane)
    app.add_middleware(RequestIdMiddleware, ids=app.request_ids)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(versioning.VersioningError, _engine_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    app.include_router(health.router)
    for module in (organizations, repositories, sessions, commits, objects):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(data.router)

    def openapi() -> dict[str, Any]:
        return _openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
