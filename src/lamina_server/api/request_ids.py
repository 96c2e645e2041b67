"""Request ids: every request and websocket gets one, and every response carries it.

The id is the caller's ``X-Request-Id`` when it sent a sane one (1-128 printable ASCII
characters), else a fresh one: 32 hex digits, a random per-process prefix and a counter (no
syscall each). It lives in the scope's state, where error envelopes and logs find it.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lamina_server.api.errors import internal_error, log_disconnect, log_unhandled

_MAX_REQUEST_ID = 128


def _fresh_ids() -> Iterator[str]:
    prefix = secrets.token_hex(8)
    return (f"{prefix}{count:016x}" for count in itertools.count())


_IDS = _fresh_ids()


def _incoming_request_id(scope: Scope) -> str | None:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= _MAX_REQUEST_ID and all(33 <= byte < 127 for byte in value):
                return value.decode("ascii")
            return None
    return None


def new_request_id() -> str:
    """A fresh id, for a request that sent none (or for an answer the app never saw)."""
    return next(_IDS)


def ensure_request_id(scope: Scope) -> str:
    """The request's id, assigned on first use and recorded in the scope's state."""
    state = scope.setdefault("state", {})
    request_id: str | None = state.get("request_id")
    if request_id is None:
        request_id = state["request_id"] = _incoming_request_id(scope) or new_request_id()
    return request_id


class RequestIdMiddleware:
    """Tags each request and websocket with its id, echoes it as ``X-Request-Id`` (on the
    response, or on the websocket's accept), logs a client that went away mid-request as just
    that, and turns any exception that escaped the handlers
    of a request into a logged 500 envelope (unless the response had already begun)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        if scope["type"] == "websocket":
            await self.app(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            log_disconnect(scope, request_id)
        except Exception:
            log_unhandled(scope, request_id)
            if started:
                raise
            await internal_error(request_id)(scope, receive, send_with_id)
