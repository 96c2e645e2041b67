"""The fast lane: the routes every upload and download goes through, served ahead of FastAPI.

:class:`LaminaApp` matches a request for one of its ``lane`` routes before FastAPI's telemetry,
middleware stack, routing and dependency machinery, and serves it the way FastAPI would have:
the same :func:`~lamina_server.api.access.prelude` of the route's declaration (request id,
query check, credential, authorization, audit hook), the same endpoint, the same error
envelopes and logged 500s. Lane routes stay ordinary registered routes too, which documents them
and serves them should the lane ever not match.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.routing import APIRouter
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from lamina_server.api.access import LaminaRoute, prelude
from lamina_server.api.errors import (
    HANDLED_ERRORS,
    envelope_for,
    internal_error,
    log_disconnect,
    log_unhandled,
)
from lamina_server.api.request_ids import ensure_request_id

Endpoint = Callable[[Request], Awaitable[Response]]


class LaneRoute:
    """A lane entry: the registered route, and the pattern of its full path."""

    def __init__(self, route: LaminaRoute, prefix: str) -> None:
        self.route = route
        self.methods = frozenset(route.methods or ())
        self.pattern: re.Pattern[str] = compile_path(prefix + route.path)[0]


class Gateway(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send, prefix: str) -> None: ...


GATEWAY_PREFIX = "/s3"
_AFTER_PREFIX = slice(len(GATEWAY_PREFIX), len(GATEWAY_PREFIX) + 1)  # "/s3x" is not the gateway's


class LaminaApp(FastAPI):
    """FastAPI with the fast lane in front; every other request goes the ordinary way.

    The S3 gateway (:mod:`lamina_server.gateway`) is in front too: it answers every request
    under :data:`GATEWAY_PREFIX`, and every request to ``gateway_port`` (``--s3-port``)."""

    lane: tuple[LaneRoute, ...] = ()
    gateway: Gateway | None = None
    gateway_port: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if self.gateway is not None:
                server = scope.get("server")
                if self.gateway_port is not None and server and server[1] == self.gateway_port:
                    await self.gateway(scope, receive, send, "")
                    return
                if path.startswith(GATEWAY_PREFIX) and path[_AFTER_PREFIX] in ("", "/"):
                    await self.gateway(scope, receive, send, GATEWAY_PREFIX)
                    return
            for entry in self.lane:
                match = entry.pattern.match(path) if method in entry.methods else None
                if match is not None:
                    scope["app"] = self
                    scope["path_params"] = match.groupdict()
                    await self._serve(entry.route, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _serve(self, route: LaminaRoute, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ensure_request_id(scope)
        request = Request(scope, receive)
        endpoint: Endpoint = route.endpoint
        try:
            await prelude(request, route.declaration)
            response = await endpoint(request)
        except HANDLED_ERRORS as exc:
            response = envelope_for(exc, request_id)
        except ClientDisconnect:
            log_disconnect(scope, request_id)
            return
        except Exception:
            log_unhandled(scope, request_id)
            response = internal_error(request_id)
        response.raw_headers.append((b"x-request-id", request_id.encode("ascii")))
        try:
            await response(scope, receive, send)
        except Exception:
            log_unhandled(scope, request_id)
            raise


def lane_routes(prefix: str, router: APIRouter, endpoints: Sequence[Any]) -> list[LaneRoute]:
    """The routes of ``router`` (included under ``prefix``) that serve ``endpoints``."""
    found = [
        LaneRoute(route, prefix)
        for route in router.routes
        if isinstance(route, LaminaRoute) and route.endpoint in endpoints
    ]
    if len(found) != len(endpoints):
        raise RuntimeError("a fast-lane endpoint is not a route of its router")
    return found
