"""Every use of httpx's private internals, in one place, with the self-checks that guard it.

The SDK keeps httpx as its interface but builds some of its objects with less work than
httpx's public constructors do, because those constructors are a large share of what the SDK
adds to a small request:

- :func:`replace_url`: a URL built from a parsed one by replacing its path and query, through
  ``URL._uri_reference`` (a named tuple), instead of parsing a string again;
- :func:`read_response`: a response whose body is already in memory, stored as
  ``Response.read()`` would store it (``_content``, ``_num_bytes_downloaded``), instead of
  passing it through httpx's decoder pipeline;
- :func:`build_request`: the request ``httpx.Request(...)`` builds (same headers in the same
  order, same body) from headers that already name the body, without encoding it again.

These rely on details httpx does not promise, so pyproject pins httpx below its next minor
version, and the module checks at import that each piece still exists and gives exactly what
the public API gives. A check that fails raises :class:`HttpxCompatibilityError` (an
``ImportError``) naming the piece and the installed httpx version: upgrading httpx past the
pin must fail loudly, never behave differently. ``nox -s tests_newest_httpx`` runs the suite
against the newest httpx to find out early.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from lamina._types import RequestContent

__all__ = ["HttpxCompatibilityError", "build_request", "read_response", "replace_url"]

#: The httpx versions these checks were written against (pyproject pins the same range).
SUPPORTED = "httpx>=0.28,<0.30"

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LENGTH_HEADERS = frozenset({"content-length", "transfer-encoding"})


class HttpxCompatibilityError(ImportError):
    """The installed httpx no longer has, or no longer behaves like, a private piece the SDK
    relies on (see :mod:`lamina._httpx_compat`)."""


# -- URLs ----------------------------------------------------------------------------------


def replace_url(base: httpx.URL, path: str, query: str | None) -> httpx.URL:
    """``base`` with its path and query replaced: ``path`` and ``query`` must already be in
    the form httpx's parser leaves them (escaped, normalized)."""
    url = httpx.URL.__new__(httpx.URL)
    url._uri_reference = base._uri_reference._replace(path=path, query=query)
    return url


def _check_replace_url() -> bool:
    base = httpx.URL("http://example.test:8710/api/v1")
    built = replace_url(base, "/api/v1/a/b%2Fc", "path=x%2Fy&n=1")
    signed = replace_url(httpx.URL("https://blobs.test"), "/b/1", "token=aZ09-_.~%2F:@!$'()*+,;=")
    parsed = httpx.URL("http://example.test:8710/api/v1/a/b%2Fc?path=x%2Fy&n=1")
    parsed_signed = httpx.URL("https://blobs.test/b/1?token=aZ09-_.~%2F:@!$'()*+,;=")
    return all(
        one == other
        and str(one) == str(other)
        and one.raw_path == other.raw_path
        and one.params == other.params
        for one, other in ((built, parsed), (signed, parsed_signed))
    )


# -- responses -----------------------------------------------------------------------------


def read_response(
    status: int, headers: Any, body: bytes, request: httpx.Request, decoded: bool
) -> httpx.Response:
    """An ``httpx.Response`` whose body is read. A ``decoded`` body (one without a
    ``Content-Encoding``) is stored as ``read()`` would store it; others go through ``read()``."""
    response = httpx.Response(
        status, headers=headers, stream=httpx.ByteStream(body), request=request
    )
    if decoded:
        _store_body(response, body)
    else:
        response.read()
    return response


def _store_body(response: httpx.Response, body: bytes) -> None:
    response._content = body
    response._num_bytes_downloaded = len(body)
    response.is_stream_consumed = response.is_closed = True


def _check_read_response() -> bool:
    body = b'{"ok": true}'
    read = httpx.Response(200, stream=httpx.ByteStream(body))
    read.read()
    stored = httpx.Response(200, stream=httpx.ByteStream(body))
    _store_body(stored, body)
    return all(
        getattr(stored, name) == getattr(read, name)
        for name in ("content", "text", "is_stream_consumed", "is_closed")
    ) and (stored.num_bytes_downloaded, stored.json()) == (len(body), {"ok": True})


# -- requests ------------------------------------------------------------------------------


def build_request(
    method: str,
    url: httpx.URL,
    headers: list[tuple[str, str]],
    content: RequestContent | None,
    extensions: dict[str, Any] | None = None,
) -> httpx.Request:
    """``httpx.Request(method, url, headers=headers, content=content, extensions=extensions)``
    for headers that already name the body's length and type (as
    :func:`lamina._http.prepare` gives them), read: only ``Host`` and a ``Content-Length: 0``
    are added, where httpx adds them, instead of encoding the body again. A streamed body goes
    to ``httpx.Request`` as it is."""
    if content is not None and not isinstance(content, bytes):
        return httpx.Request(method, url, headers=headers, content=content, extensions=extensions)
    names = {name.lower() for name, _ in headers}
    auto: list[tuple[str, str]] = []
    if "host" not in names and url.host:
        auto.append(("Host", url.netloc.decode("ascii")))
    if method in _BODY_METHODS and not names & _LENGTH_HEADERS:
        auto.append(("Content-Length", "0"))
    request = httpx.Request(
        method,
        url,
        headers=auto + headers if auto else headers,
        stream=httpx.ByteStream(content or b""),
        extensions=extensions,
    )
    request.read()
    return request


def _check_build_request() -> bool:
    url = httpx.URL("http://127.0.0.1:8710/api/v1/x?a=1")
    headers = [("user-agent", "lamina"), ("authorization", "Bearer k")]
    for method in ("GET", "PUT"):
        for body in (None, b"abc"):
            sized = [*headers, ("Content-Length", "3")] if body else headers
            built = build_request(method, url, sized, body)
            expected = httpx.Request(method, url, headers=sized, content=body)
            if (built.headers.raw, built.content) != (expected.headers.raw, expected.content):
                return False
    return True


# -- the checks ----------------------------------------------------------------------------

_CHECKS: dict[str, Callable[[], bool]] = {
    "replace_url (httpx.URL._uri_reference)": _check_replace_url,
    "read_response (httpx.Response._content, _num_bytes_downloaded)": _check_read_response,
    "build_request (the headers and body httpx.Request builds)": _check_build_request,
}


def check() -> None:
    """Run every self-check; raise :class:`HttpxCompatibilityError` for the first that fails."""
    for piece, holds in _CHECKS.items():
        try:
            ok = holds()
        except (AttributeError, TypeError, ValueError, httpx.HTTPError) as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = "it no longer gives what httpx's public API gives"
        if not ok:
            raise HttpxCompatibilityError(
                f"lamina relies on a private part of httpx that httpx {httpx.__version__} "
                f"changed: {piece}; {reason}. Install a supported httpx ({SUPPORTED})."
            )


check()
