"""Server-rendered pages: a small kit (layout, escaping, security headers) and
:class:`PageRoute`, the route class of every page.

A page is plain HTML with inline CSS, no script and no build step. Everything a page shows
that a client wrote (paths, messages, names, file contents) goes through :func:`esc`. Every
page answer forbids scripts, framing and caching (:data:`SECURITY_HEADERS`). A page's route is
declared like any route (:func:`~lamina_server.api.access.repository_page`) and passes the
same prelude; :class:`PageRoute` answers its refusals as pages: a browser that is not signed in
is sent to sign in, any other error is a readable page with the status the API would answer.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from lamina_server.api.access import Access, LaminaRoute
from lamina_server.api.errors import (
    HANDLED_ERRORS,
    ApiError,
    api_error_for,
    request_id_of,
    validation_failed,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{display:flex;gap:1em;align-items:center;padding:.6em 1.5em;background:#1d2330;color:#fff}
header a{color:#fff}header .who{margin-left:auto}header form{margin:0}
main{max-width:70em;margin:1.5em auto;padding:0 1.5em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1.2em}dt{color:#5a6275}dd{margin:0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #dde1e8;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:13px/1.4 ui-monospace,monospace}
pre{background:#fff;border:1px solid #dde1e8;padding:.7em;overflow:auto;max-height:30em}
.state{font-weight:600;padding:.1em .5em;border-radius:.3em;background:#e4e7ee}
.pending{background:#fff0c2}.approved,.added{color:#116b2f}.rejected,.removed{color:#a3261b}
.decide{display:flex;gap:2em;flex-wrap:wrap}.decide form{flex:1;min-width:20em;background:#fff;
border:1px solid #dde1e8;padding:1em}
textarea,input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.4em}
button{margin-top:.6em;padding:.45em 1.2em;font-size:1em;cursor:pointer}
.approve{background:#116b2f;color:#fff;border:0}.reject{background:#a3261b;color:#fff;border:0}
.error{color:#a3261b;font-weight:600}.muted{color:#5a6275}
"""

_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Already decided"}


def esc(value: object) -> str:
    """``value`` as HTML text (or an attribute's quoted value)."""
    return html.escape(str(value), quote=True)


def page_path(*segments: str) -> str:
    """An absolute path of this server, each segment percent-encoded."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def csrf_field(access: Access) -> str:
    """The hidden field every form of a signed-in page carries."""
    return f'<input type="hidden" name="csrf_token" value="{esc(access.csrf_token or "")}">'


def _header(access: Access | None) -> str:
    who = ""
    if access is not None and access.principal is not None:
        principal = access.principal
        who = (
            f'<span class="who">{esc(principal.type)} <b>{esc(principal.name)}</b></span>'
            '<form method="post" action="/logout"><button>Sign out</button></form>'
        )
    return f"<header><b>Lamina</b>{who}</header>"


def render(title: str, body: str, *, access: Access | None = None, status: int = 200) -> Response:
    """A whole page: ``body`` (HTML, already escaped) under ``title``."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · Lamina</title><style>{_STYLE}</style></head>"
        f"<body>{_header(access)}<main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status)


def redirect(location: str) -> Response:
    """Where a form's answer sends the browser (a GET of ``location``)."""
    return RedirectResponse(location, status_code=303)


def local_path(value: str | None) -> str | None:
    """``value`` when it is a path of this server (``/...``, no scheme, host or backslash:
    never an open redirect), else ``None``."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _return_to(request: Request) -> str:
    """Where signing in leads back to: the page itself, or for a form the page posts
    (``<page>/<verb>``), the page."""
    path = request.url.path
    if request.method != "GET":
        path = path.rsplit("/", 1)[0] or "/"
    query = request.url.query if request.method == "GET" else ""
    return path + (f"?{query}" if query else "")


def error_page(request: Request, error: ApiError) -> Response:
    title = _TITLES.get(error.status_code, "Error")
    body = (
        f"<h1>{esc(title)}</h1><p class='error'>{esc(error.message)}</p>"
        f"<p class='muted'>Request id <code>{esc(request_id_of(request))}</code>. "
        f"<a href='/login?next={quote(_return_to(request), safe='')}'>Sign in as someone "
        "else</a>.</p>"
    )
    return render(title, body, status=error.status_code)


class PageRoute(LaminaRoute):
    """A page's route: the prelude of its (``browser``) declaration, then its handler; what
    either refuses is answered as a page, and every answer carries :data:`SECURITY_HEADERS`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        if not self.declaration.browser:
            raise TypeError(f"page {path} is declared as an API route")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await handle(request)
            except RequestValidationError as exc:
                response = error_page(request, validation_failed(exc.errors()))
            except HANDLED_ERRORS as exc:
                error = api_error_for(exc)
                if error.code == "login_required":
                    response = redirect(f"/login?next={quote(_return_to(request), safe='')}")
                else:
                    response = error_page(request, error)
            response.headers.update(SECURITY_HEADERS)
            return response

        return handler
