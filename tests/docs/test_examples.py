"""Every Python example of the documentation site runs against a real server.

Each page's blocks (``tests/docs/examples.py`` says how they are read and steered) run as one
script in a subprocess, against a fresh ``LocalServer`` of the page's own, with
``LAMINA_ENDPOINT_URL``/``LAMINA_API_KEY`` set to it, an empty ``HOME`` (no config file) and a
scratch working directory. The examples are written for the default endpoint
``127.0.0.1:8710``: that address in a block is rewritten to the test server's.
``LAMINA_DOCS_DATA_ARGS`` (JSON) holds the ``lamina server`` flags naming the server's data,
for a hidden set-up that adds a user with ``create-user``. DuckDB's httpfs
extension is put where ``INSTALL httpfs`` finds it (from the ``duckdb-extension-httpfs``
wheel: nothing is downloaded). A failure points at the page and line of the example.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.testing import LocalServer
from tests.docs.examples import DOCS, RUNNER, Block, page_blocks, pages
from tests.postgres import data_args

RUN_TIMEOUT = 240


def _pages_with_examples() -> list[str]:
    """Pages with a python block or a marker (read by the test itself, so that a page the
    runner cannot read fails its own test rather than the collection)."""
    return [
        page.relative_to(DOCS).as_posix()
        for page in pages()
        if re.search(
            r"^\s*(```+|~~~+)\s*(python|py)\b|^\s*<!--\s*docs-test:", page.read_text(), re.M
        )
    ]


def _httpfs_for_home(home: Path) -> None:
    import duckdb

    from tests.server.gateway_clients import httpfs_extension

    platform = duckdb.sql("PRAGMA platform").fetchone()
    assert platform is not None
    folder = home / ".duckdb" / "extensions" / f"v{duckdb.__version__}" / platform[0]
    folder.mkdir(parents=True)
    shutil.copy(httpfs_extension(), folder / "httpfs.duckdb_extension")


def run_page(
    blocks: list[Block], server: LocalServer, scratch: Path
) -> subprocess.CompletedProcess[str]:
    host = server.endpoint_url.removeprefix("http://")
    runnable = [
        {
            "page": b.page,
            "line": b.line,
            "code": b.code.replace("127.0.0.1:8710", host),
            "file": b.file,
        }
        for b in blocks
        if b.skip_reason is None
    ]
    home, work = scratch / "home", scratch / "work"
    home.mkdir()
    work.mkdir()
    _httpfs_for_home(home)
    (scratch / "blocks.json").write_text(json.dumps(runnable))
    (scratch / "runner.py").write_text(RUNNER)
    env = {
        **os.environ,
        "HOME": str(home),
        "LAMINA_ENDPOINT_URL": server.endpoint_url,
        "LAMINA_API_KEY": server.api_key,
        # for a hidden set-up that runs `lamina server create-user` on the page's server
        "LAMINA_DOCS_DATA_ARGS": json.dumps(data_args(server)),
        "PYTHONPATH": os.pathsep.join([str(DOCS.parent / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(scratch / "runner.py"), str(scratch / "blocks.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


@pytest.mark.parametrize("page", _pages_with_examples())
def test_the_examples_of_the_page_run(page: str, tmp_path: Path) -> None:
    blocks = page_blocks(DOCS / page)
    with LocalServer(data_dir=tmp_path / "server") as server:
        ran = run_page(blocks, server, tmp_path)
    assert ran.returncode == 0, f"{page}:\n{ran.stderr[-6000:]}"
