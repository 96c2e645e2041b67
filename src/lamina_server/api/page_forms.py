"""The forms a page posts (:mod:`lamina_server.api.access`, ``browser=True``): read before the
handler runs, from the server's own origin only, and carrying the signed-in session's CSRF
token."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request

from lamina_server.api.deps import Services, request_base
from lamina_server.api.errors import bad_request, forbidden

if TYPE_CHECKING:
    from lamina_server.api.access import Access, Declaration

_FORM = "form"
_FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 32


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_origin(request: Request, services: Services) -> None:
    """Refuses a form the browser says comes from another origin (a browser sends ``Origin``
    with every form it posts)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_origin_of(request_base(request))}
    if services.config.public_url:
        allowed.add(_origin_of(services.config.public_url))
    if origin.lower() not in allowed:
        raise forbidden(f"a form from {origin!r} may not be posted here")


def _parse(request: Request, body: bytes) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if body and content_type != _FORM_TYPE:
        raise bad_request(f"a form must be sent as {_FORM_TYPE}")
    try:
        text = body.decode("utf-8")
        fields = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the form is not URL-encoded UTF-8 of a few fields") from None
    return dict(fields)


async def check_form(
    request: Request, access: Access, declaration: Declaration, body: bytes
) -> None:
    """The URL-encoded form a page posted, once the prelude passed the request: refused (403)
    from another origin, or when a signed-in form lacks the session's CSRF token (a refusal
    audited as a denial of the page's action); else left for :data:`PageForm`."""
    services: Services = request.app.state.services
    _check_origin(request, services)
    form = _parse(request, body)
    expected = access.csrf_token
    if expected is not None and not hmac.compare_digest(
        form.get("csrf_token", "").encode(), expected.encode()
    ):
        reason = "the form's CSRF token is missing or wrong (reload the page and try again)"
        assert access.resource is not None, "a signed-in page names its resource"
        await services.audit.denied(
            access.caller, str(declaration.actions[-1]), access.resource, reason
        )
        raise forbidden(reason)
    request.scope["state"][_FORM] = form


async def _current_form(request: Request) -> dict[str, str]:
    form: dict[str, str] | None = request.scope["state"].get(_FORM)
    if form is None:
        raise RuntimeError("the route posts no page form")
    return form


PageForm = Annotated[dict[str, str], Depends(_current_form)]
