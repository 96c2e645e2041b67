"""The entry point: its options, and the message when the [mcp] extra is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lamina.mcp import main
from tests.mcp.conftest import SRC


def test_an_unknown_transport_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--transport", "sse"])
    assert exited.value.code == 2
    assert "invalid choice: 'sse'" in capsys.readouterr().err


def test_without_the_extra_the_error_says_what_to_install() -> None:
    code = "import sys; sys.modules['mcp'] = None; import lamina.mcp"
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'lamina[mcp]'" in done.stderr


def test_lamina_mcp_is_the_same_command() -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "lamina.cli", "mcp", "--transport", "sse"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice: 'sse'" in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "lamina.cli", "--help"], env=env, capture_output=True, text=True
    )
    assert "mcp" in listed.stdout and "Serve MCP to agents" in listed.stdout
