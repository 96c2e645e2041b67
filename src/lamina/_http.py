"""The pure parts of sending a request: header sets, timeouts, redirects, idempotency.

Written once for both clients (and for anything else that opens a connection to the API, such
as a websocket handshake): no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from lamina._errors import ConfigurationError
from lamina._retry import is_idempotent
from lamina._types import TimeoutTypes
from lamina._urls import origin
from lamina._version import __version__

__all__ = [
    "CONNECT_ERRORS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "HeaderSets",
    "is_request_idempotent",
    "redirect_request",
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


class HeaderSets:
    """The headers every request starts from, normalized once (each request copies one).

    Three sets: for other origins (no ``Host``, never the API key), for the client's own
    origin without the API key, and for its own origin with it (``None`` without a key).
    ``default_headers`` are in all three.
    """

    def __init__(
        self, base: httpx.URL, api_key: str | None, default_headers: Mapping[str, str] | None
    ) -> None:
        self._origin = origin(base)
        self.foreign = httpx.Headers({"user-agent": USER_AGENT})
        self.foreign.update(default_headers or {})
        self.own = httpx.Headers(
            self.foreign.raw
            if "host" in self.foreign
            else [(b"Host", base.netloc), *self.foreign.raw]
        )
        self.authenticated: httpx.Headers | None = None
        if api_key:
            self.authenticated = httpx.Headers(self.own)
            self.authenticated["authorization"] = f"Bearer {api_key}"

    def select(self, url: httpx.URL, *, absolute: bool, authenticated: bool) -> httpx.Headers:
        """The set for a request to ``url`` (``absolute``: given as a full URL, so perhaps on
        another origin). The API key goes only to the client's own origin, only when
        ``authenticated``; a request that needs it without one raises
        :class:`~lamina.ConfigurationError`."""
        if absolute and origin(url) != self._origin:
            return self.foreign
        if not authenticated:
            return self.own
        if self.authenticated is None:
            raise ConfigurationError(NO_API_KEY)
        return self.authenticated


def timeout_extension(timeout: TimeoutTypes) -> dict[str, float | None]:
    """The ``timeout`` request extension httpx transports read."""
    return httpx.Timeout(timeout).as_dict()


def is_request_idempotent(request: httpx.Request, override: bool | None) -> bool:
    """``override`` if given, else what the method and an ``Idempotency-Key`` header say."""
    if override is not None:
        return override
    return is_idempotent(request.method, request.headers)


def redirect_request(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The request a 3xx response points to: 303 (and 301/302 after a POST) become a GET
    without a body. The API key is dropped whatever the target's origin: the API redirects
    only to signed URLs, and a signed URL's token is its one credential."""
    url = request.url.join(response.headers["location"])
    method = request.method
    status = response.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers.pop("host", None)
    headers.pop("authorization", None)
    content: bytes | None = None
    if method == request.method:
        content = request.content or None
    else:
        for name in ("content-length", "content-type", "transfer-encoding"):
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions=request.extensions
    )
