"""Request bodies: read bounded, then replayed to the framework that reads them again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from lamina_server.api.errors import ApiError

MAX_JSON_BODY = 4 * 1024 * 1024


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "request_too_large", f"the request body is larger than the {limit}-byte limit"
    )


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request's body, at most ``limit`` bytes of it: 413 past that (at once, when the
    declared ``Content-Length`` says so, before a byte is read)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def replaying(request: Request, body: bytes) -> Request:
    """A request over the same scope whose body is ``body`` (already read)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
