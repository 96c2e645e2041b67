"""Who is calling: an API key (``Authorization: Bearer``), a signed-in browser's session
cookie, or a signed URL's token; and the query-string check every request passes first. The
prelude (:mod:`lamina_server.api.access`) calls these, then authorizes."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import HTTPConnection, Request

from lamina_server.api.deps import Services, query
from lamina_server.api.errors import ApiError, bad_request, forbidden, unauthorized
from lamina_server.api.signing import TokenError
from lamina_server.identity import Authenticated
from lamina_server.identity.web_sessions import WebSession

SESSION_COOKIE = "lamina_session"


def check_query_encoding(raw: bytes) -> None:
    """Refuses a query that does not read as one string: raw non-ASCII bytes, or
    percent-escapes that are not UTF-8 (decoding them leniently would make two different raw
    keys one)."""
    if not raw.isascii():
        raise bad_request("the query string must be percent-encoded ASCII")
    if b"%" in raw:
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the query string's percent-escapes are not valid UTF-8") from None


async def authenticate(request: HTTPConnection, services: Services) -> Authenticated:
    """The principal behind ``Authorization: Bearer <key>`` (and the access epoch its rights
    are judged at); 401 envelope otherwise."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing Authorization header (expected 'Bearer <api key>')")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthorized("malformed Authorization header (expected 'Bearer <api key>')")
    authenticated = await services.identity.authenticate(key)
    if authenticated is None:
        raise unauthorized("invalid API key")
    return authenticated


def login_required() -> ApiError:
    return ApiError(401, "login_required", "sign in to open this page")


async def authenticate_browser(request: HTTPConnection, services: Services) -> WebSession:
    """The signed-in browser session the request's cookie names; ``login_required`` (401,
    which a page answers by sending the browser to sign in) otherwise."""
    token = request.cookies.get(SESSION_COOKIE)
    session = await services.web_sessions.resolve(token) if token else None
    if session is None:
        raise login_required()
    return session


def verify_token(request: Request, services: Services, kind: str) -> dict[str, Any]:
    token = query(request).get("token")
    if not token:
        raise bad_request("token is required (use the URL exactly as it was handed out)")
    try:
        return services.signer.verify(kind, token)
    except TokenError as exc:
        raise forbidden(f"this URL's token {exc}") from None
