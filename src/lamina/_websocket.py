"""The pure parts of the sandbox websockets: URL, handshake headers, and the mapping of
``websockets`` failures onto the SDK's errors (no ``websockets`` exception escapes a public
call).

- A refused handshake (401, 403, 404, 410, 503... with the API's JSON error envelope in the
  body) raises the same typed :class:`~lamina.APIError` as an HTTP request would.
- Any other failure to connect (refused, reset, TLS, timeout, not a websocket) raises
  :class:`~lamina.TransportError`.
- A connection that ends before the command or terminal did: :class:`~lamina.SandboxError`
  when the server closed it normally (e.g. the sandbox ended), :class:`~lamina.TransportError`
  when it was lost.
"""

from __future__ import annotations

import httpx
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from lamina._errors import LaminaError, SandboxError, TransportError, api_error_from_response
from lamina._redact import redact

__all__ = [
    "MAX_MESSAGE_SIZE",
    "STDIN_CHUNK_SIZE",
    "closed_error",
    "handshake_error",
    "handshake_headers",
    "websocket_url",
]

#: Largest message accepted from the server (output arrives in chunks far smaller).
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Stdin is sent in frames of at most this many bytes.
STDIN_CHUNK_SIZE = 64 * 1024


def websocket_url(url: httpx.URL) -> str:
    """``url`` with ``ws``/``wss`` for ``http``/``https``."""
    return str(url.copy_with(scheme="wss" if url.scheme == "https" else "ws"))


def handshake_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers for a handshake (``Host`` is the websocket library's to set)."""
    return [(name, value) for name, value in headers if name.lower() != "host"]


def handshake_error(exc: BaseException, url: str) -> LaminaError:
    """The SDK error for a websocket that could not be opened at ``url``."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        http_response = httpx.Response(
            response.status_code,
            headers=list(response.headers.raw_items()),
            content=bytes(response.body or b""),
            request=httpx.Request("GET", url),
        )
        http_response.read()
        return api_error_from_response(http_response)
    return TransportError(
        redact(f"GET {url}: the websocket could not be opened: {type(exc).__name__}: {exc}")
    )


def closed_error(exc: ConnectionClosed, what: str) -> LaminaError:
    """The SDK error for a connection that closed before ``what`` (e.g. "the command
    exited")."""
    if isinstance(exc, ConnectionClosedOK):
        return SandboxError(f"the sandbox closed the connection before {what} ({exc})")
    return TransportError(f"the connection to the sandbox was lost before {what} ({exc})")
