"""Signing a browser in to the server's pages with an API key, and out again
(:mod:`lamina_server.identity.web_sessions`).

``POST /login`` answers a live key with a session cookie (``HttpOnly``, ``SameSite=Strict``,
``Path=/``, and ``Secure`` when the server is reached over https) and sends the browser back to
``next``, which must be a path of this server. ``POST /logout`` ends the session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from lamina_server.api.access import public_page
from lamina_server.api.authentication import SESSION_COOKIE
from lamina_server.api.html import PageRoute, esc, local_path, redirect, render
from lamina_server.api.page_forms import PageForm
from lamina_server.api.params import ServicesDep
from lamina_server.identity.web_sessions import LIFETIME

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_KEY_CHARS = 512

Next = Annotated[str | None, Query(description="Where to go once signed in (a local path)")]


def _form(next_path: str | None, error: str = "") -> str:
    problem = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    target = f'<input type="hidden" name="next" value="{esc(next_path)}">' if next_path else ""
    return (
        "<h1>Sign in</h1>"
        "<p>Sign in with one of your Lamina API keys (<code>lamina auth login</code> shows how to "
        "make one). The key is checked, never kept by the browser.</p>"
        f'{problem}<form method="post" action="/login">{target}'
        '<label for="api_key">API key</label>'
        '<input type="password" id="api_key" name="api_key" autocomplete="off" required>'
        '<button type="submit">Sign in</button></form>'
    )


def _secure(request: Request, public_url: str | None) -> bool:
    return request.url.scheme == "https" or bool(public_url and public_url.startswith("https:"))


@router.get("/login", dependencies=[public_page()])
async def login_page(next: Next = None) -> Response:
    return render("Sign in", _form(local_path(next)))


@router.post("/login", dependencies=[public_page()])
async def login(request: Request, form: PageForm, services: ServicesDep) -> Response:
    next_path = local_path(form.get("next"))
    key = form.get("api_key", "").strip()
    started = await services.web_sessions.start(key) if 0 < len(key) <= MAX_KEY_CHARS else None
    if started is None:
        return render("Sign in", _form(next_path, "That API key is not valid."), status=401)
    if next_path is not None:
        response = redirect(next_path)
    else:
        principal = started.session.authenticated.principal
        response = render(
            "Signed in",
            f"<h1>Signed in</h1><p>You are signed in as {esc(principal.type)} "
            f"<b>{esc(principal.name)}</b>. Open an approval link to review a change.</p>",
        )
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        secure=_secure(request, services.config.public_url),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", dependencies=[public_page()])
async def logout(request: Request, services: ServicesDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await services.web_sessions.end(token)
    response = redirect("/login")
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=_secure(request, services.config.public_url),
        httponly=True,
        samesite="strict",
    )
    return response
