"""SDK errors as MCP tool errors: the server's message, its error code and the request id.

A tool call that fails returns ``isError: true`` with one line of text for the model to read,
e.g. ``Not found: repository 'acme/nope' does not exist (HTTP 404, code not_found, request id
3f2a...)``. The request id is the one the server logged, so an operator can find the call.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from lamina._errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    LaminaError,
    NotFoundError,
    ServerError,
    TransportError,
)

P = ParamSpec("P")
R = TypeVar("R")

#: How each kind of API error is introduced (cerebral's MCP server words it the same way).
_KINDS: tuple[tuple[type[APIError], str], ...] = (
    (AuthenticationError, "Authentication failed (check LAMINA_API_KEY)"),
    (ForbiddenError, "Permission denied"),
    (NotFoundError, "Not found"),
    (ConflictError, "Conflict"),
    (ServerError, "Server error"),
)


def describe(exc: LaminaError) -> str:
    """One line: what failed, the server's message, status, code and request id."""
    if isinstance(exc, APIError):
        kind = next((text for cls, text in _KINDS if isinstance(exc, cls)), "Request failed")
        details = [f"HTTP {exc.status_code}"]
        if exc.code:
            details.append(f"code {exc.code}")
        details.append(f"request id {exc.request_id or 'unknown'}")
        return f"{kind}: {exc.message} ({', '.join(details)})"
    if isinstance(exc, TransportError):
        return f"Network error: {exc}"
    return str(exc)


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap a tool so that an SDK error becomes a :class:`ToolError` (the tool's signature,
    and so its input schema, is kept)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except LaminaError as exc:
            raise ToolError(describe(exc)) from exc

    return wrapper
