"""Request URLs: the client's base URL joined with a path and query parameters.

Parsing a URL string is a large share of an ``httpx`` request's client-side cost, so
:class:`ApiUrls` parses the base URL once and builds each API URL by replacing the path and
query of the parsed base. That uses httpx's parsed form (``URL._uri_reference``, a named
tuple); a self-check at import proves it gives exactly what parsing gives, and any path that
would need escaping, and any absolute URL, goes through ``httpx.URL`` as usual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

__all__ = ["ApiUrls", "encode_query", "origin"]

#: Path characters httpx leaves as they are (RFC 3986 pchar and "/", and %XX escapes).
_PLAIN_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")


def encode_query(params: Mapping[str, Any]) -> str:
    """The query string for ``params`` as httpx encodes it: ``None`` values left out, booleans
    as ``true``/``false``, a list or tuple as a repeated key."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            pairs.extend((key, _query_value(item)) for item in value if item is not None)
        elif value is not None:
            pairs.append((key, _query_value(value)))
    return urlencode(pairs)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _replace(base: httpx.URL, path: str, query: str | None) -> httpx.URL:
    url = httpx.URL.__new__(httpx.URL)
    url._uri_reference = base._uri_reference._replace(path=path, query=query)
    return url


def _replacing_matches_parsing() -> bool:
    base = httpx.URL("http://example.test:8710/api/v1")
    try:
        built = _replace(base, "/api/v1/a/b%2Fc", "path=x%2Fy&n=1")
    except (AttributeError, TypeError, ValueError):
        return False
    parsed = httpx.URL("http://example.test:8710/api/v1/a/b%2Fc?path=x%2Fy&n=1")
    return built == parsed and str(built) == str(parsed) and built.raw_path == parsed.raw_path


_FAST = _replacing_matches_parsing()


class ApiUrls:
    """Builds the URL of each request from a path (relative to ``base_url``, or absolute)."""

    def __init__(self, base_url: str) -> None:
        self.base = httpx.URL(base_url)
        self._prefix = self.base.path.rstrip("/")
        self._base_text = str(self.base).rstrip("/")

    def build(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.URL:
        query = encode_query(params) if params else ""
        if path.startswith(("http://", "https://")):
            url = httpx.URL(path)
            return url.copy_merge_params(httpx.QueryParams(query)) if query else url
        if not path.startswith("/"):
            path = f"/{path}"
        if _FAST and _PLAIN_PATH.fullmatch(path):
            return _replace(self.base, self._prefix + path, query or None)
        if query:
            path = f"{path}&{query}" if "?" in path else f"{path}?{query}"
        return httpx.URL(self._base_text + path)
