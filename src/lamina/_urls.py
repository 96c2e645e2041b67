"""Request URLs: the client's base URL joined with a path and query parameters.

Parsing a URL string is a large share of an ``httpx`` request's client-side cost, so
:class:`ApiUrls` parses the base URL once and builds each API URL by replacing the path and
query of the parsed base; an absolute URL (a signed upload or download URL) is built the same
way on its parsed origin, which is parsed once and remembered. The replacing is
:func:`lamina._httpx_compat.replace_url` (httpx's parsed form, checked at import); any path or
query that would need escaping or normalizing goes through ``httpx.URL`` as usual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

import httpx

from lamina._httpx_compat import replace_url

__all__ = ["ApiUrls", "encode_query", "origin"]

# Characters httpx leaves as they are in a path (RFC 3986 pchar and "/") and in a query (a
# subset of those it leaves), "%" included: it must start an escape, checked apart.
_PATH = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*"
_QUERY = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*"
_PLAIN_PATH = re.compile(_PATH)
#: An absolute http(s) URL with such a path and query: its origin, path and query.
_PLAIN_ABSOLUTE = re.compile(rf"(https?://[^/?#]+)(/{_PATH})(?:\?({_QUERY}))?")
_NOT_AN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: Characters ``quote_plus`` leaves as they are, and "/" (which it escapes as %2F).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.\-~/]*")
#: Origins of absolute URLs remembered parsed (the API's own, an object store's...).
_MAX_ORIGINS = 16


def encode_query(params: Mapping[str, Any]) -> str:
    """The query string for ``params`` as httpx encodes it: ``None`` values left out, booleans
    as ``true``/``false``, a list or tuple as a repeated key."""
    pairs: list[str] = []
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            pairs.extend(
                f"{_quote(key)}={_quote(_query_value(item))}" for item in value if item is not None
            )
        elif value is not None:
            pairs.append(f"{_quote(key)}={_quote(_query_value(value))}")
    return "&".join(pairs)


def _quote(text: str) -> str:
    if _PLAIN_VALUE.fullmatch(text):
        return text.replace("/", "%2F")
    return quote_plus(text)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _plain_path(path: str) -> bool:
    """True for a path httpx would neither escape nor normalize (no "." or ".." segment)."""
    return _PLAIN_PATH.fullmatch(path) is not None and "/." not in path and _escapes_only(path)


def _escapes_only(text: str) -> bool:
    """True when every "%" in ``text`` starts a %XX escape."""
    return "%" not in text or _NOT_AN_ESCAPE.search(text) is None


class ApiUrls:
    """Builds the URL of each request from a path (relative to ``base_url``, or absolute)."""

    def __init__(self, base_url: str) -> None:
        self.base = httpx.URL(base_url)
        self._prefix = self.base.path.rstrip("/")
        self._base_text = str(self.base).rstrip("/")
        self._origins: dict[str, httpx.URL] = {}

    def build(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.URL:
        query = encode_query(params) if params else ""
        if path.startswith(("http://", "https://")):
            return self._absolute(path, query)
        if not path.startswith("/"):
            path = f"/{path}"
        if _plain_path(path):
            return replace_url(self.base, self._prefix + path, query or None)
        if query:
            path = f"{path}&{query}" if "?" in path else f"{path}?{query}"
        return httpx.URL(self._base_text + path)

    def _absolute(self, text: str, query: str) -> httpx.URL:
        match = None if query else _PLAIN_ABSOLUTE.fullmatch(text)
        if match is not None and "/." not in match[2] and _escapes_only(text):
            prefix, path, own_query = match.groups()
            return replace_url(self._origin(prefix), path, own_query)
        url = httpx.URL(text)
        return url.copy_merge_params(httpx.QueryParams(query)) if query else url

    def _origin(self, prefix: str) -> httpx.URL:
        """``scheme://authority`` parsed, remembered for the next URL on that origin."""
        parsed = self._origins.get(prefix)
        if parsed is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            parsed = self._origins[prefix] = httpx.URL(prefix)
        return parsed
