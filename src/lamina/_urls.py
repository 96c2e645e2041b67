"""Request URLs: the client's base URL joined with a path and query parameters.

Parsing a URL string is a large share of an ``httpx`` request's client-side cost, so
:class:`ApiUrls` parses the base URL once and builds each request's :class:`Target` from the
parsed origin and a path and query already in the form httpx's parser leaves them: its text
is a concatenation (what the aiohttp transport sends), and its ``httpx.URL``, built only when
a request goes through httpx, replaces the path and query of the parsed origin
(:func:`lamina._httpx_compat.replace_url`, checked at import). An absolute URL (a signed upload
or download URL) is built the same way on its origin, which is parsed once and remembered;
any path or query that would need escaping or normalizing goes through ``httpx.URL`` as usual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

import httpx

from lamina._httpx_compat import replace_url

__all__ = ["ApiUrls", "Origin", "Target", "encode_query", "origin"]

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
#: Query parameter names remembered quoted (a few names recur in every request).
_NAMES: dict[str, str] = {}
_MAX_NAMES = 256
#: Plain API paths remembered with the base path before them (most calls reuse a few).
_MAX_PATHS = 256


def encode_query(params: Mapping[str, Any]) -> str:
    """The query string for ``params`` as httpx encodes it: ``None`` values left out, booleans
    as ``true``/``false``, a list or tuple as a repeated key."""
    pairs: list[str] = []
    for key, value in params.items():
        if value is None:
            continue
        name = _NAMES.get(key)
        if name is None:
            if len(_NAMES) >= _MAX_NAMES:
                _NAMES.clear()
            name = _NAMES[key] = _quote(key)
        if type(value) is str:
            pairs.append(f"{name}={_quote(value)}")
        elif isinstance(value, (list, tuple)):
            pairs.extend(
                f"{name}={_quote(_query_value(item))}" for item in value if item is not None
            )
        else:
            pairs.append(f"{name}={_quote(_query_value(value))}")
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


class Origin:
    """A ``scheme://authority`` the client sends requests to, parsed once: ``own`` when it is
    the API's own (the API key may go there)."""

    __slots__ = ("authority", "netloc", "own", "scheme", "text", "url")

    def __init__(self, url: httpx.URL, own: bool) -> None:
        self.url = url
        self.own = own
        self.text = str(replace_url(url, "", None))
        self.scheme, _, self.authority = self.text.partition("://")
        self.netloc = url.netloc.decode("ascii")


class Target:
    """A request URL: its text (as ``str(httpx.URL(...))`` gives it) and its origin, and
    its ``path`` and ``query`` as httpx's parser leaves them (``path`` is ``None`` for a URL
    httpx parsed); the ``httpx.URL`` is built on first use."""

    __slots__ = ("_url", "origin", "path", "query", "text")

    def __init__(self, origin: Origin, path: str, query: str | None) -> None:
        self.origin = origin
        self.path: str | None = path
        self.query = query
        self._url: httpx.URL | None = None
        self.text = origin.text + path if query is None else f"{origin.text}{path}?{query}"

    @classmethod
    def parsed(cls, url: httpx.URL, origin: Origin) -> Target:
        """The target of a URL httpx parsed."""
        target = cls.__new__(cls)
        target.origin = origin
        target.path = target.query = None
        target._url = url
        target.text = str(url)
        return target

    @property
    def url(self) -> httpx.URL:
        if self._url is None:
            assert self.path is not None
            self._url = replace_url(self.origin.url, self.path, self.query)
        return self._url


class ApiUrls:
    """Builds the target of each request from a path (relative to ``base_url``, or absolute)."""

    def __init__(self, base_url: str) -> None:
        self.base = httpx.URL(base_url)
        self._own = origin(self.base)
        self.origin = Origin(self.base, own=True)
        self._prefix = self.base.path.rstrip("/")
        self._base_text = str(self.base).rstrip("/")
        self._origins: dict[str, Origin] = {}
        self._paths: dict[str, str] = {}

    def build(self, path: str, params: Mapping[str, Any] | None = None) -> Target:
        query = encode_query(params) if params else ""
        full = self._paths.get(path)
        if full is not None:
            return Target(self.origin, full, query or None)
        if path.startswith(("http://", "https://")):
            return self._absolute(path, query)
        given = path
        if not path.startswith("/"):
            path = f"/{path}"
        if _plain_path(path):
            if len(self._paths) >= _MAX_PATHS:
                self._paths.clear()
            full = self._paths[given] = self._prefix + path
            return Target(self.origin, full, query or None)
        if query:
            path = f"{path}&{query}" if "?" in path else f"{path}?{query}"
        return self.parsed(httpx.URL(self._base_text + path))

    def parsed(self, url: httpx.URL) -> Target:
        """The target of a URL httpx parsed (a redirect's location, a path that needed it)."""
        root = str(url.copy_with(path="/", query=None, fragment=None))
        return Target.parsed(url, self._origin(root[:-1]))

    def _absolute(self, text: str, query: str) -> Target:
        match = None if query else _PLAIN_ABSOLUTE.fullmatch(text)
        if match is not None and "/." not in match[2] and _escapes_only(text):
            prefix, path, own_query = match.groups()
            return Target(self._origin(prefix), path, own_query)
        url = httpx.URL(text)
        return self.parsed(url.copy_merge_params(httpx.QueryParams(query)) if query else url)

    def _origin(self, prefix: str) -> Origin:
        """``scheme://authority`` parsed, remembered for the next URL on that origin."""
        parsed = self._origins.get(prefix)
        if parsed is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            url = httpx.URL(prefix)
            parsed = self._origins[prefix] = Origin(url, own=origin(url) == self._own)
        return parsed
