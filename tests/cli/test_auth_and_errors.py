"""``lamina auth`` (login writes the SDK's config file, mode 0600; the SDK then reads it),
the one-line errors, shell completion, and the commands with parsers of their own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from lamina import Client
from lamina._config import read_config_file
from lamina.testing import LocalServer
from tests.cli.conftest import SRC, Invoke

Process = Callable[..., subprocess.CompletedProcess[bytes]]
LOGGED_OUT = {"LAMINA_API_KEY": None, "LAMINA_ENDPOINT_URL": None}


def config(home: Path) -> dict[str, str]:
    return read_config_file(home / ".lamina" / "config.toml")


def test_login_with_flags_writes_the_config_the_sdk_reads(
    lamina: Invoke, local_server: LocalServer, home: Path
) -> None:
    (home / ".lamina").mkdir()
    (home / ".lamina" / "config.toml").write_text(
        'default_sandbox_image = "host"\napi_key = "tuk-old"\n\n[extra]\nkept = true\n'
    )
    result = lamina(
        "auth",
        "login",
        "--endpoint",
        local_server.endpoint_url,
        "--api-key",
        local_server.api_key,
        env=LOGGED_OUT,
    )
    assert result.exit_code == 0, result.output
    assert f"Logged in to {local_server.endpoint_url} as user" in result.stdout
    path = home / ".lamina" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config(home) == {
        "api_key": local_server.api_key,
        "endpoint_url": local_server.endpoint_url,
        "default_sandbox_image": "host",
    }
    assert path.read_text().endswith("[extra]\nkept = true\n")
    # the SDK, and the CLI without any environment, now use it
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        env_key = os.environ.pop("LAMINA_API_KEY", None)
        with Client() as client:
            assert client.endpoint_url == local_server.endpoint_url
            assert client.auth.me().organizations
    finally:
        if env_key is not None:
            os.environ["LAMINA_API_KEY"] = env_key
        if previous is not None:
            os.environ["HOME"] = previous
    whoami = lamina("auth", "whoami", "--json", env=LOGGED_OUT)
    assert whoami.exit_code == 0, whoami.output
    data = json.loads(whoami.stdout)
    assert data["endpoint_url"] == local_server.endpoint_url
    assert data["caller"]["type"] == "user"
    assert local_server.org in [org["name"] for org in data["organizations"]]
    assert local_server.org in lamina("auth", "whoami", env=LOGGED_OUT).stdout

    out = lamina("auth", "logout", env=LOGGED_OUT)
    assert out.exit_code == 0 and "removed the API key" in out.stdout
    assert "api_key" not in config(home)
    assert config(home)["endpoint_url"] == local_server.endpoint_url
    after = lamina("auth", "whoami", env=LOGGED_OUT)
    assert after.exit_code == 1
    assert "lamina auth login" in after.stderr and "Traceback" not in after.output
    assert "No API key saved" in lamina("auth", "logout", env=LOGGED_OUT).stderr


def test_login_prompts_and_refuses_a_bad_key(
    lamina: Invoke, local_server: LocalServer, home: Path
) -> None:
    bad = lamina(
        "auth", "login", input=f"{local_server.endpoint_url}\ntuk-not-a-key\n", env=LOGGED_OUT
    )
    assert bad.exit_code == 1
    assert "Endpoint URL" in bad.stdout and "API key" in bad.stdout
    assert "tuk-not-a-key" not in bad.output  # the key is not echoed
    assert "HTTP 401" in bad.stderr and "request id" in bad.stderr
    assert not (home / ".lamina" / "config.toml").exists()  # nothing saved

    good = lamina(
        "auth",
        "login",
        input=f"{local_server.endpoint_url}\n{local_server.api_key}\n",
        env=LOGGED_OUT,
    )
    assert good.exit_code == 0, good.output
    assert config(home)["api_key"] == local_server.api_key


def test_a_bad_key_is_one_line_and_status_1_without_traceback(
    lamina_process: Process, repository: str
) -> None:
    result = lamina_process("ls", repository, env={"LAMINA_API_KEY": "tuk-wrong"})
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "HTTP 401" in lines[0]
    assert "request id " in lines[0]
    assert result.stdout == b""
    debug = lamina_process("--debug", "ls", repository, env={"LAMINA_API_KEY": "tuk-wrong"})
    assert debug.returncode == 1 and b"Traceback" in debug.stderr
    assert b"AuthenticationError" in debug.stderr


def test_errors_of_input_and_of_the_server(lamina: Invoke, repository: str) -> None:
    missing = lamina("ls", f"{repository[:-1]}x-missing/")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    not_a_path = lamina("cat", "acme")
    assert not_a_path.exit_code == 1 and "not a repository path" in not_a_path.stderr
    local = lamina("cp", "/no/such/file", f"{repository}/x", "-m", "x")
    assert local.exit_code == 1 and "/no/such/file" in local.stderr
    usage = lamina("cp", "only-one")
    assert usage.exit_code == 2 and "Missing argument" in usage.stderr


def test_every_command_has_help_with_examples(lamina: Invoke) -> None:
    from lamina.cli.app import cli

    def walk(command: click.Command, path: list[str]) -> None:
        if path and path[0] in ("server", "evidence", "mcp"):  # their own parsers answer --help
            assert "Example" in (command.help or "")
            return
        result = lamina(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert result.stdout.startswith(f"Usage: lamina {' '.join(path)}".rstrip()), path
        assert "Example" in result.stdout, path
        for name, child in getattr(command, "commands", {}).items():
            walk(child, [*path, name])

    walk(cli, [])


def test_shell_completion(cli_env: dict[str, str | None]) -> None:
    environ = {k: v for k, v in {**os.environ, **cli_env}.items() if v is not None}
    environ["PYTHONPATH"] = str(SRC)
    script = subprocess.run(
        [sys.executable, "-m", "lamina.cli"],
        env={**environ, "_LAMINA_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "_lamina_completion" in script.stdout
    words = subprocess.run(
        [sys.executable, "-m", "lamina.cli"],
        env={
            **environ,
            "_LAMINA_COMPLETE": "bash_complete",
            "COMP_WORDS": "lamina se",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert {"plain,server", "plain,sessions"} <= set(words.stdout.splitlines())


def test_server_and_evidence_keep_their_parsers(lamina: Invoke, tmp_path: Path) -> None:
    import lamina.cli

    with pytest.raises(SystemExit) as exit_info:
        lamina.cli.main(["server", "--help"])
    assert exit_info.value.code == 0
    assert lamina.cli.main(["evidence", "verify", str(tmp_path / "missing.zip")]) == 2
    assert lamina.cli.main(["evidence", "verify"]) == 2
    assert lamina.cli.main(["no-such-command"]) == 2


def test_without_the_cli_extra_server_and_evidence_still_run(
    cli_env: dict[str, str | None],
) -> None:
    environ = {k: v for k, v in {**os.environ, **cli_env}.items() if v is not None}
    environ["PYTHONPATH"] = str(SRC)
    blocked = "import sys; sys.modules['click'] = None; from lamina.cli import main; "

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = f"{blocked}sys.exit(main({list(args)!r}))"
        return subprocess.run(
            [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=False
        )

    server = run("server", "--help")
    assert server.returncode == 0 and "--data-dir" in server.stdout
    assert run("evidence", "verify").returncode == 2
    other = run("ls", "acme/data")
    assert other.returncode == 1
    assert "pip install 'lamina[cli]'" in other.stderr
