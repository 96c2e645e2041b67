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
  order, same body) from headers normalized once, for the bodies the SDK sends over and over.

These rely on details httpx does not promise, so pyproject pins httpx below its next minor
version, and the module checks at import that each piece still exists and gives exactly what
the public API gives. A check that fails raises :class:`HttpxCompatibilityError` (an
``ImportError``) naming the piece and the installed httpx version: upgrading httpx past the
pin must fail loudly, never behave differently. ``nox -s tests_newest_httpx`` runs the suite
against the newest httpx to find out early.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from lamina._types import RequestContent

__all__ = ["HttpxCompatibilityError", "build_request", "read_response", "replace_url"]

#: The httpx versions these checks were written against (pyproject pins the same range).
SUPPORTED = "httpx>=0.28,<0.30"

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPE = ("Content-Type", "application/json")


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
    headers: httpx.Headers,
    *,
    extra_headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: RequestContent | None = None,
    extensions: dict[str, Any] | None = None,
) -> httpx.Request:
    """``httpx.Request(method, url, headers=<headers updated with extra_headers>, json=json,
    content=content, extensions=extensions)``, read (``request.content`` is set unless the
    body streams). JSON is encoded compactly, as UTF-8, as httpx encodes it since 0.28; a
    streamed body goes to ``httpx.Request`` as it is."""
    raw = headers.raw
    if extra_headers:
        extra = [_encoded(name, value) for name, value in extra_headers.items()]
        replaced = {name.lower() for name, _ in extra}
        raw = [item for item in raw if item[0].lower() not in replaced] + extra
    names = {name.lower() for name, _ in raw}
    if content is None and json is None:
        body = b""
    elif content is None:
        text = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        body = text.encode("utf-8")
        _add_missing(raw, names, ("Content-Length", str(len(body))), _JSON_TYPE)
    elif isinstance(content, (bytes, str)):
        body = content.encode("utf-8") if isinstance(content, str) else content
        if body:
            _add_missing(raw, names, ("Content-Length", str(len(body))))
    else:
        return httpx.Request(method, url, headers=raw, content=content, extensions=extensions)
    method = method.upper()
    if b"host" not in names and url.host:
        raw.insert(0, (b"Host", url.netloc))
    if method in _BODY_METHODS and not names & {b"content-length", b"transfer-encoding"}:
        raw.insert(1 if b"host" not in names and url.host else 0, (b"Content-Length", b"0"))
    request = httpx.Request(
        method, url, headers=raw, stream=httpx.ByteStream(body), extensions=extensions
    )
    request.read()
    return request


def _encoded(name: str, value: str) -> tuple[bytes, bytes]:
    """A header as httpx encodes one given as text (ASCII)."""
    return name.encode("ascii"), value.encode("ascii")


def _add_missing(
    raw: list[tuple[bytes, bytes]], names: set[bytes], *headers: tuple[str, str]
) -> None:
    """Append the headers the body implies that the caller did not set."""
    for name, value in headers:
        header = _encoded(name, value)
        if header[0].lower() not in names:
            raw.append(header)
            names.add(header[0].lower())


def _check_build_request() -> bool:
    url = httpx.URL("http://127.0.0.1:8710/api/v1/x?a=1")
    headers = {"user-agent": "lamina", "authorization": "Bearer k"}
    bodies: list[dict[str, Any]] = [{}, {"json": {"a": "ü", "b": [1, 2.5]}}, {"content": b"abc"}]
    for method in ("GET", "PUT"):
        for body in bodies:
            built = build_request(method, url, httpx.Headers(headers), **body)
            expected = httpx.Request(method, url, headers=headers, **body)
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
