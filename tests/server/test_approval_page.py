"""The approval page (where ``web_url`` leads) against the real server: signing in with an API
key, the page's refusals (not signed in, a bad key, no CSRF token, a foreign origin, a member
without ``ApproveSession``), escaping of what a client wrote, and, in a real headless Chromium
driven by Playwright, approving and rejecting a held change by clicking."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lamina.testing import LocalServer
from tests.conftest import RepoHttp
from tests.server.members import Member, new_member

AGENT_POLICY = "CreateSession()\nPutObject()\nCommitSession()\nListObjects()\n"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "cache-control")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def member(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> Iterator[Member]:
    """A fresh organization (the bootstrap admin is its OrgAdmin) whose repository holds
    agents' commits for approval, and a plain member of it."""
    found = new_member(api, local_server, unique_name)
    rule = api.put(f"{found.o}/repositories/data", json={"approval_required_for": "agents"})
    assert rule.status_code == 200, rule.text
    yield found
    found.client.close()


@pytest.fixture
def agent(api: httpx.Client, member: Member) -> Iterator[RepoHttp]:
    """The member organization's repository, as an agent that writes through sessions."""
    created = api.post(
        f"{member.o}/agents",
        json={"name": "writer", "description": "", "inline_policy": AGENT_POLICY},
    )
    assert created.status_code == 201, created.text
    key = api.post(f"{member.o}/agents/writer/auth/keys", json={"name": "k", "description": ""})
    assert key.status_code == 201, key.text
    with httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {key.json()['token']}"}
    ) as client:
        yield RepoHttp(client, f"{member.org}/data")


@pytest.fixture
def browser(local_server: LocalServer) -> Iterator[httpx.Client]:
    """A cookie-keeping client on the server's root that does not follow redirects."""
    with httpx.Client(base_url=local_server.endpoint_url, timeout=60.0) as client:
        yield client


def _held(agent: RepoHttp, files: dict[str, bytes], message: str = "needs a look") -> str:
    """The web_url of the agent's commit of ``files``, held for approval."""
    session = agent.session()
    for path, data in files.items():
        agent.put(session, path, data)
    response = agent.api.post(f"{agent.base}/sessions/{session}", json={"message": message})
    assert response.status_code == 202, response.text
    web_url: str = response.json()["web_url"]
    return web_url


def _path(web_url: str) -> str:
    return "/" + web_url.split("/", 3)[3]


def _sign_in(browser: httpx.Client, key: str, next_path: str | None = None) -> httpx.Response:
    form = {"api_key": key} if next_path is None else {"api_key": key, "next": next_path}
    return browser.post("/login", data=form)


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def _audit(api: httpx.Client, member: Member, web_url: str) -> list[tuple[str, str, str]]:
    session = web_url.rsplit("/", 1)[1]
    items = api.get(f"{member.o}/audit-log", params={"resource_id": session}).json()["items"]
    return [(entry["action"], entry["outcome"], entry["principal_name"]) for entry in items]


def _denials(api: httpx.Client, member: Member) -> list[tuple[str, str, str]]:
    """The organization's audited denials: (action, principal name, reason)."""
    items = api.get(f"{member.o}/audit-log", params={"outcome": "denied"}).json()["items"]
    return [(e["action"], e["principal_name"], e["details"]["reason"]) for e in items]


# --- HTTP: signing in and the page's refusals --------------------------------------------------


def test_a_browser_that_is_not_signed_in_is_sent_to_sign_in(
    browser: httpx.Client, agent: RepoHttp
) -> None:
    page = _path(_held(agent, {"a.txt": b"a"}))
    response = browser.get(page)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={quote(page, safe='')}"
    for header in SECURITY_HEADERS:
        assert header in response.headers
    posted = browser.post(f"{page}/approve", data={"csrf_token": "x"})
    assert posted.status_code == 303 and posted.headers["location"].endswith(quote(page, safe=""))
    form = browser.get(response.headers["location"])
    assert form.status_code == 200 and f'name="next" value="{page}"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert form.headers["x-frame-options"] == "DENY" and form.headers["cache-control"] == "no-store"


def test_a_bad_key_is_refused_on_the_sign_in_page(browser: httpx.Client) -> None:
    response = _sign_in(browser, "tuk-not-a-key", "/approvals/x/y/z")
    assert response.status_code == 401
    assert "That API key is not valid." in response.text
    assert 'value="/approvals/x/y/z"' in response.text
    assert "set-cookie" not in response.headers and not browser.cookies


def test_signing_in_sets_a_strict_cookie_and_goes_back_only_to_a_local_path(
    browser: httpx.Client, local_server: LocalServer
) -> None:
    signed_in = _sign_in(browser, local_server.api_key, "/approvals/a/b/c?after=x")
    assert (
        signed_in.status_code == 303 and signed_in.headers["location"] == "/approvals/a/b/c?after=x"
    )
    cookie = signed_in.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/", "max-age=43200"):
        assert attribute in cookie
    assert "secure" not in cookie  # plain http on loopback
    for foreign in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        response = _sign_in(browser, local_server.api_key, foreign)
        assert response.status_code == 200 and "Signed in" in response.text, foreign
        assert "location" not in response.headers
        assert "evil" not in browser.get("/login", params={"next": foreign}).text


def test_signing_out_ends_the_session(
    browser: httpx.Client, local_server: LocalServer, agent: RepoHttp
) -> None:
    page = _path(_held(agent, {"a.txt": b"a"}))
    assert _sign_in(browser, local_server.api_key, page).status_code == 303
    token = browser.cookies["lamina_session"]
    assert browser.get(page).status_code == 200
    out = browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "lamina_session" not in browser.cookies
    browser.cookies.set("lamina_session", token)  # the old cookie no longer signs in
    assert browser.get(page).status_code == 303


def test_a_form_needs_the_sessions_csrf_token_and_the_servers_origin(
    api: httpx.Client,
    browser: httpx.Client,
    local_server: LocalServer,
    member: Member,
    agent: RepoHttp,
) -> None:
    web_url = _held(agent, {"a.txt": b"a"})
    page = _path(web_url)
    _sign_in(browser, local_server.api_key)
    token = _csrf(browser.get(page))
    for form in ({}, {"csrf_token": "wrong"}):
        refused = browser.post(f"{page}/approve", data=form)
        assert refused.status_code == 403 and "CSRF token" in refused.text
        assert refused.headers["content-type"].startswith("text/html")
    foreign = browser.post(
        f"{page}/approve", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "evil.example" in foreign.text
    assert "a.txt" not in RepoHttp(api, agent.repository).tree()
    assert [(action, name) for action, name, _ in _denials(api, member)] == [
        ("ApproveSession", "admin")
    ] * 2
    assert all("CSRF token" in reason for _, _, reason in _denials(api, member))


def test_a_member_without_approve_session_gets_a_403_page_and_an_audit_entry(
    api: httpx.Client, browser: httpx.Client, member: Member, agent: RepoHttp
) -> None:
    web_url = _held(agent, {"a.txt": b"a"})
    page = _path(web_url)
    key = member.client.headers["authorization"].removeprefix("Bearer ")
    assert _sign_in(browser, key, page).status_code == 303
    viewed = browser.get(page)
    assert viewed.status_code == 200 and "a.txt" in viewed.text
    refused = browser.post(f"{page}/approve", data={"csrf_token": _csrf(viewed)})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "ApproveSession" in refused.text and "Not allowed" in refused.text
    [(action, name, reason)] = _denials(api, member)
    assert action == "ApproveSession" and name.startswith("user-") and "ApproveSession" in reason


def test_what_a_client_wrote_is_escaped(
    browser: httpx.Client, local_server: LocalServer, agent: RepoHttp
) -> None:
    evil = "<script>alert(1)</script>"
    web_url = _held(agent, {f"x{evil}.txt": evil.encode()}, message=f"msg {evil}")
    _sign_in(browser, local_server.api_key)
    page = browser.get(_path(web_url))
    assert page.status_code == 200
    assert "<script" not in page.text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"x{escaped}.txt" in page.text  # the path
    assert f"msg {escaped}" in page.text  # the message
    assert page.text.count(escaped) >= 4  # also the preview and the form's message


def test_a_decision_on_the_page_is_audited_as_through_the_api(
    api: httpx.Client,
    browser: httpx.Client,
    local_server: LocalServer,
    member: Member,
    agent: RepoHttp,
) -> None:
    approved_url = _held(agent, {"kept.txt": b"kept"})
    rejected_url = _held(agent, {"dropped.txt": b"dropped"})
    _sign_in(browser, local_server.api_key)
    token = _csrf(browser.get(_path(approved_url)))
    approved = browser.post(
        f"{_path(approved_url)}/approve", data={"csrf_token": token, "message": "ok"}
    )
    assert approved.status_code == 303 and approved.headers["location"] == _path(approved_url)
    rejected = browser.post(
        f"{_path(rejected_url)}/reject", data={"csrf_token": token, "reason": "no"}
    )
    assert rejected.status_code == 303
    tree = RepoHttp(api, agent.repository).tree()
    assert "kept.txt" in tree and "dropped.txt" not in tree
    assert _audit(api, member, approved_url) == [
        ("CommitSession", "approval_required", "writer"),
        ("ApproveSession", "approved", "admin"),
    ]
    assert _audit(api, member, rejected_url)[-1] == ("ApproveSession", "rejected", "admin")
    decided = browser.get(_path(rejected_url))
    assert "rejected" in decided.text and "read-only" in decided.text
    assert 'action="' not in decided.text.split("<main>", 1)[1]  # no decision forms left
    again = browser.post(f"{_path(rejected_url)}/approve", data={"csrf_token": token})
    assert again.status_code == 409 and "Already decided" in again.text
    listing = browser.get(_path(approved_url).rsplit("/", 1)[0])
    assert listing.status_code == 200 and "Nothing is waiting for approval." in listing.text


# --- a real browser -------------------------------------------------------------------------


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright. Playwright's sync API keeps an event
    loop in this thread while it runs: ask for this fixture after those that set up data."""
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def test_in_a_browser_sign_in_open_web_url_and_approve_or_reject(
    api: httpx.Client, local_server: LocalServer, agent: RepoHttp, chromium: Any
) -> None:
    report = b"quarter,revenue\nq3,1200\n"
    approved_url = _held(agent, {"reports/q3.csv": report, "big.bin": b"\0" * 40_000}, "q3 numbers")
    rejected_url = _held(agent, {"oops.txt": b"oops"}, "an accident")
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(approved_url)
        assert page.url.startswith(f"{local_server.endpoint_url}/login?next=")
        page.fill("#api_key", local_server.api_key)
        page.click("button[type=submit]")
        page.wait_for_url(approved_url)
        changes = page.inner_text("#changes")
        assert "reports/q3.csv" in changes and "big.bin" in changes and "39.1 KiB" in changes
        previews = page.locator("pre.preview").all_inner_texts()
        assert previews == [report.decode()]  # the binary file is not previewed
        page.fill("#message", "q3 numbers, checked")
        page.click("button.approve")
        page.wait_for_selector("#commit")
        assert page.inner_text(".state") == "approved"
        commit_id = page.inner_text("#commit")
        commit = api.get(f"{agent.base}/commits/{commit_id}").json()
        assert commit["message"] == "q3 numbers, checked" and commit["committer"] == "writer"
        assert RepoHttp(api, agent.repository).read("reports/q3.csv") == report

        page.goto(rejected_url)
        page.fill("#reason", "not this one")
        page.click("button.reject")
        page.wait_for_selector(".state.rejected")
        assert "not this one" in page.content()
        assert "oops.txt" not in RepoHttp(api, agent.repository).tree()
    finally:
        context.close()
