"""The documentation site (mkdocs.yml): ``mkdocs build --strict`` succeeds, the built site
needs nothing from outside (no CDN, no web fonts), and headless Chromium renders its home, a
guide and the OpenAPI page with the theme, the navigation and highlighted code, every asset
answering 200. Screenshots go to ``$LAMINA_DOCS_SCREENSHOTS`` when it is set (to look at them),
else to the test's temporary directory."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def build_site(out: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the repository's site into ``out``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = build_site(out)
    assert built.returncode == 0, built.stderr[-5000:]
    assert "WARNING" not in built.stderr, built.stderr[-5000:]
    return out


def test_the_site_builds_strict_with_every_page(site: Path) -> None:
    for page in (
        "index.html",
        "getting-started/index.html",
        "guides/fastapi/index.html",
        "reference/clients/index.html",
        "reference/http-api/index.html",
        "migrating/index.html",
        "sdk/index.html",
        "api/openapi.json",
    ):
        assert (site / page).is_file(), page
    clients = (site / "reference/clients/index.html").read_text()
    # the API reference has both faces, with their methods, and no Sphinx roles left over
    for anchor in ("lamina.Client.repository", "lamina.AsyncClient.repository"):
        assert f'id="{anchor}"' in clients
    assert ":class:`" not in clients and ":meth:`" not in clients


def test_the_site_loads_nothing_from_outside(site: Path) -> None:
    """Offline: no script, stylesheet, font or image from another host in any page."""
    external = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")
    offenders = [
        f"{page.relative_to(site)}: {match.group(0)}"
        for page in site.rglob("*.html")
        for match in external.finditer(page.read_text())
    ]
    assert offenders == []


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on a loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LAMINA_DOCS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize(
    ("page", "name", "title"),
    [
        ("", "home", "Lamina"),
        ("guides/sessions-and-commits/", "guide", "Sessions and commits"),
    ],
)
def test_chromium_renders_pages_with_theme_nav_and_highlighting(
    served: str, chromium: Any, tmp_path: Path, page: str, name: str, title: str
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    failed: list[str] = []
    outside: list[str] = []
    try:
        tab = context.new_page()
        tab.route(
            re.compile(r"^(?!http://127\.0\.0\.1:)"),
            lambda route: (outside.append(route.request.url), route.abort()),
        )
        tab.on(
            "response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
        )
        tab.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
        tab.goto(f"{served}/{page}", wait_until="networkidle")
        assert title in tab.title()
        # the theme's stylesheet applied: Material's header bar is fixed and coloured
        header = tab.locator("header.md-header")
        assert header.evaluate("e => getComputedStyle(e).position") in {"sticky", "fixed"}
        nav = tab.locator("nav.md-nav--primary").inner_text()
        for entry in ("Getting started", "Guides", "API reference"):
            assert entry in nav
        # pygments highlighting: keywords of the first python example are coloured spans
        keyword = tab.locator(".highlight .kn, .highlight .k").first
        assert keyword.evaluate("e => getComputedStyle(e).color") != tab.locator(
            ".highlight code"
        ).first.evaluate("e => getComputedStyle(e).color")
        tab.screenshot(path=str(_screenshots(tmp_path) / f"{name}.png"), full_page=False)
    finally:
        context.close()
    assert failed == []
    assert outside == []


def test_chromium_renders_the_openapi_page_offline(
    served: str, chromium: Any, tmp_path: Path
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    try:
        tab = context.new_page()
        tab.route(
            re.compile(r"^(?!http://127\.0\.0\.1:)"),
            lambda route: (outside.append(route.request.url), route.abort()),
        )
        tab.goto(f"{served}/reference/http-api/", wait_until="networkidle")
        frame = tab.frame_locator("iframe.swagger-ui-iframe")
        operations = frame.locator(".opblock")
        operations.first.wait_for(timeout=30_000)
        assert operations.count() > 50
        assert "/organizations/{organization}/repositories" in frame.locator("body").inner_text()
        tab.screenshot(path=str(_screenshots(tmp_path) / "openapi.png"))
    finally:
        context.close()
    assert outside == []
