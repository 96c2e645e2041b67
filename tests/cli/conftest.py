"""Fixtures of the CLI tests: the ``lamina`` command run as a user runs it, against the
session's real server, with a home directory of its own (so no config file of the machine's
is read) and the server's key in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lamina.cli.app import cli
from lamina.testing import LocalServer

SRC = Path(__file__).resolve().parents[2] / "src"

Invoke = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli_server(local_server: LocalServer) -> LocalServer:
    """The server the commands talk to (a module may override it with a server of its own)."""
    return local_server


@pytest.fixture
def cli_env(cli_server: LocalServer, home: Path) -> dict[str, str | None]:
    """The environment a logged-in user's command sees (key and endpoint from env)."""
    return {
        "HOME": str(home),
        "LAMINA_API_KEY": cli_server.api_key,
        "LAMINA_ENDPOINT_URL": cli_server.endpoint_url,
        "NO_COLOR": "1",
        "FORCE_COLOR": None,
        "TTY_COMPATIBLE": None,
        "COLUMNS": "200",
    }


@pytest.fixture
def lamina(cli_env: dict[str, str | None]) -> Invoke:
    """``lamina("ls", "org/repo")``: the command in process (click's runner); ``input=`` is
    stdin, ``env=`` adds to the environment. Fails the test on an exception the command did
    not turn into an exit status."""

    def invoke(
        *args: str, input: bytes | str | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        result = CliRunner().invoke(
            cli, list(args), input=input, env={**cli_env, **(env or {})}, prog_name="lamina"
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture
def lamina_process(
    cli_env: dict[str, str | None],
) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """The command as a whole process (``python -m lamina.cli``), as the console script runs
    it; returns the completed process (stdout and stderr captured as bytes)."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[bytes]:
        merged = {**os.environ, **cli_env, **(env or {})}
        environ = {name: value for name, value in merged.items() if value is not None}
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environ.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", "lamina.cli", *args],
            env=environ,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def new_repository(cli_server: LocalServer, unique_name: Callable[..., str], lamina: Invoke) -> str:
    """A second fresh repository, made with ``lamina repo create``."""
    path = f"{cli_server.org}/{unique_name('repo')}"
    result = lamina("repo", "create", path)
    assert result.exit_code == 0, result.output
    return path
