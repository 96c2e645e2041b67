"""The pure parts of sending a request: header sets, the prepared request and its reply,
timeouts, redirects, idempotency.

Written once for both clients (and for anything else that opens a connection to the API, such
as a websocket handshake): no I/O here. A request is prepared once (:func:`prepare`): its
target, its headers as text in the order httpx would send them, its body encoded; a retry
sends the same :class:`Prepared` again. Whichever way it is sent (the aiohttp pool directly,
or an ``httpx`` client or transport), the answer is a :class:`Reply`.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Mapping
from typing import Any

import httpx

from lamina._errors import ConfigurationError, InvalidArgumentError
from lamina._httpx_compat import build_request, read_response
from lamina._retry import is_idempotent
from lamina._types import RequestContent, TimeoutTypes
from lamina._urls import Origin, Target
from lamina._version import __version__

__all__ = [
    "CONNECT_ERRORS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "HeaderSets",
    "Prepared",
    "Reply",
    "is_request_idempotent",
    "prepare",
    "redirect",
    "timeout_extension",
]

USER_AGENT = f"lamina-python/{__version__}"
#: Seconds for each phase of a request; waiting for a free pooled connection is not limited.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, pool=None)
DEFAULT_MAX_RETRIES = 2
MAX_REDIRECTS = 20
#: Failures where the connection was never made, so the server cannot have seen the request.
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

NO_API_KEY = (
    "No API key configured: pass api_key= to the client, set LAMINA_API_KEY, or start a "
    "local server with `lamina server`, which writes one to ~/.lamina/config.toml."
)

Headers = list[tuple[str, str]]
#: A request body as it is sent: bytes, or chunks streamed (never sent twice).
Body = bytes | RequestContent

_JSON = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
#: Timeout extensions remembered by the identity of the timeout they were built from.
_EXTENSIONS: dict[int, tuple[TimeoutTypes, dict[str, float | None]]] = {}
_MAX_EXTENSIONS = 64
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CONTENT_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding"})
_BREAK = re.compile(r"[\r\n\0]")


class HeaderSets:
    """The headers every request starts from, as text, normalized once (a request that adds
    none sends the set itself).

    Three sets: for other origins (never the API key), for the client's own origin without
    the API key, and for its own origin with it (``None`` without a key). ``default_headers``
    are in all three; the own-origin sets start with its ``Host``.
    """

    def __init__(
        self, base: Origin, api_key: str | None, default_headers: Mapping[str, str] | None
    ) -> None:
        normalized = httpx.Headers({"user-agent": USER_AGENT})
        normalized.update(default_headers or {})
        self.foreign: Headers = [(k.decode("ascii"), v.decode("ascii")) for k, v in normalized.raw]
        _check_headers(self.foreign, "default_headers")
        if api_key and _BREAK.search(api_key):
            raise ConfigurationError("the API key contains a line break or NUL")
        has_host = any(name.lower() == "host" for name, _ in self.foreign)
        self.own: Headers = self.foreign if has_host else [("Host", base.netloc), *self.foreign]
        self.authenticated: Headers | None = None
        if api_key:
            self.authenticated = [*self.own, ("authorization", f"Bearer {api_key}")]

    def select(self, origin: Origin, *, authenticated: bool) -> Headers:
        """The set for a request to ``origin``. The API key goes only to the client's own
        origin, only when ``authenticated``; a request that needs it without one raises
        :class:`~lamina.ConfigurationError`."""
        if not origin.own:
            return self.foreign
        if not authenticated:
            return self.own
        if self.authenticated is None:
            raise ConfigurationError(NO_API_KEY)
        return self.authenticated


class Prepared:
    """One request, ready to send (and to send again): ``content`` is ``None`` without a
    body, ``bytes`` for a body in memory, else chunks to stream (``streamed``: they cannot be
    sent twice); ``timeout`` is the ``timeout`` extension httpx transports read."""

    __slots__ = ("content", "headers", "method", "streamed", "target", "timeout")

    def __init__(
        self,
        method: str,
        target: Target,
        headers: Headers,
        content: Body | None,
        timeout: dict[str, float | None],
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.content = content
        self.streamed = content is not None and not isinstance(content, bytes)
        self.timeout = timeout

    def request(self) -> httpx.Request:
        """The request as httpx sends it (``Host`` and ``Content-Length: 0`` added as httpx adds
        them), read unless its body streams."""
        return build_request(
            self.method, self.target.url, self.headers, self.content, {"timeout": self.timeout}
        )


class Reply:
    """An answer as the client's retry loop sees it: status and headers (a case-insensitive
    mapping), and either the ``httpx.Response`` it came as, or (from the exchange pool,
    :mod:`lamina._exchange`) the raw headers, the read body and the request, from which
    :meth:`httpx_response` builds one only if it is asked for."""

    __slots__ = ("_content", "_prepared", "headers", "raw_headers", "response", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        raw_headers: Any,
        content: bytes,
        prepared: Prepared,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.raw_headers = raw_headers
        self._content = content
        self._prepared = prepared
        self.response: httpx.Response | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        reply = cls.__new__(cls)
        reply.status_code = response.status_code
        reply.headers = response.headers
        reply.response = response
        return reply

    @property
    def content(self) -> bytes:
        """The body (read unless the request asked for a stream)."""
        return self._content if self.response is None else self.response.content

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECT_STATUSES and "location" in self.headers

    def httpx_response(self) -> httpx.Response:
        """The answer as an ``httpx.Response`` (built once)."""
        if self.response is None:
            request = self._prepared.request()
            self.response = read_response(
                self.status_code, self.raw_headers, self._content, request, True
            )
        return self.response


def prepare(
    method: str,
    target: Target,
    headers: Headers,
    *,
    extra_headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: RequestContent | None = None,
    timeout: dict[str, float | None],
) -> Prepared:
    """The request ``httpx.Request(method, url, headers=<headers updated with extra_headers>,
    json=json, content=content)`` would send, but for ``Host`` and ``Content-Length: 0``,
    which each transport adds as httpx does: JSON encoded compactly, as UTF-8 (as httpx
    encodes it since 0.28), with its ``Content-Type``; a body in memory with its
    ``Content-Length``; a streamed body as it is."""
    if extra_headers:
        extra = list(extra_headers.items())
        _check_headers(extra, "headers")
        replaced = {name.lower() for name, _ in extra}
        headers = [item for item in headers if item[0].lower() not in replaced] + extra
    body: Body | None
    if content is None and json is None:
        body = None
    elif content is None:
        body = _JSON.encode(json).encode("utf-8")
        headers = _with_defaults(
            headers, ("Content-Length", str(len(body))), ("Content-Type", "application/json")
        )
    elif isinstance(content, (bytes, str)):
        body = content.encode("utf-8") if isinstance(content, str) else content
        if body:
            headers = _with_defaults(headers, ("Content-Length", str(len(body))))
    else:
        body = content
    return Prepared(method.upper(), target, headers, body, timeout)


def _check_headers(headers: Headers, given_as: str) -> None:
    """Refuse a header whose name or value would break the header block it is sent in (a
    line break starts a header of the caller's choosing: header injection)."""
    for name, value in headers:
        if _BREAK.search(name) or _BREAK.search(value):
            raise InvalidArgumentError(
                f"{given_as}: the header {name[:100]!r} contains a line break or NUL"
            )


def _with_defaults(headers: Headers, *defaults: tuple[str, str]) -> Headers:
    """``headers`` and, after them, the ``defaults`` it does not set (by name, any case)."""
    names = {name.lower() for name, _ in headers}
    return headers + [item for item in defaults if item[0].lower() not in names]


def timeout_extension(timeout: TimeoutTypes) -> dict[str, float | None]:
    """The ``timeout`` request extension httpx transports read (the same dict each time for
    the same ``timeout`` object: an ``httpx.Timeout`` is taken as immutable)."""
    seen = _EXTENSIONS.get(id(timeout))
    if seen is not None and seen[0] is timeout:
        return seen[1]
    extension = httpx.Timeout(timeout).as_dict()
    if len(_EXTENSIONS) >= _MAX_EXTENSIONS:
        _EXTENSIONS.clear()
    _EXTENSIONS[id(timeout)] = (timeout, extension)  # kept, so that the id stays its own
    return extension


def is_request_idempotent(prepared: Prepared, override: bool | None) -> bool:
    """``override`` if given, else what the method and an ``Idempotency-Key`` header say."""
    if override is not None:
        return override
    return is_idempotent(prepared.method, (name for name, _ in prepared.headers))


def redirect(prepared: Prepared, reply: Reply, target: Target) -> Prepared:
    """The request a 3xx ``reply`` sends on to ``target`` (its ``Location``): 303 (and 301/302
    after a POST) become a GET without a body. ``Host`` and the API key are dropped whatever
    the target's origin: the API redirects only to signed URLs, and a signed URL's token is
    its one credential."""
    method = prepared.method
    status = reply.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    dropped = {"host", "authorization"}
    content = prepared.content
    if method != prepared.method:
        dropped |= _CONTENT_HEADERS
        content = None
    headers = [item for item in prepared.headers if item[0].lower() not in dropped]
    return Prepared(method, target, headers, content, prepared.timeout)
