"""First start: admin user, organization and key; the SDK config file; keys stored hashed;
the ``create-user`` command; the ``lamina server`` entry point."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import lamina.cli
from lamina.testing import LocalServer, _free_port
from tests.postgres import data_args

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@contextmanager
def server_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m lamina_server <args>`` on a free port; yields (endpoint, process)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lamina_server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{endpoint}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield endpoint, process
    finally:
        process.terminate()
        process.wait(timeout=15)


def key_in_output(output: str) -> str:
    keys = [word for word in output.split() if word.startswith("tuk-")]
    assert len(keys) == 1, output
    return keys[0]


def organizations(endpoint: str, key: str) -> httpx.Response:
    return httpx.get(f"{endpoint}/api/v1/organizations", headers={"Authorization": f"Bearer {key}"})


def test_first_start_bootstraps_and_writes_private_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config_path = tmp_path / "home" / "lamina" / "config.toml"
    with server_process(
        "--data-dir", str(data_dir), "--org", "acme", "--config-path", str(config_path)
    ) as (endpoint, process):
        config = tomllib.loads(config_path.read_text())
        assert config["endpoint_url"] == endpoint
        key = config["api_key"]
        assert key.startswith("tuk-") and len(key) > 40
        assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
        response = organizations(endpoint, key)
        assert response.status_code == 200
        assert [org["name"] for org in response.json()["results"]] == ["acme"]
        process.terminate()
        output = process.communicate(timeout=15)[0]
    assert key_in_output(output) == key

    # The key is stored only as its SHA-256 digest.
    raw = b"".join(path.read_bytes() for path in data_dir.glob("metadata.db*"))
    assert key.encode() not in raw
    with sqlite3.connect(data_dir / "metadata.db") as db:
        hashes = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    assert hashes == [hashlib.sha256(key.encode()).hexdigest()]

    # A restart on the same data neither makes a new key nor touches the config file.
    before = config_path.stat().st_mtime_ns
    with server_process("--data-dir", str(data_dir), "--config-path", str(config_path)) as (
        endpoint,
        process,
    ):
        assert organizations(endpoint, key).status_code == 200
        process.terminate()
        output = process.communicate(timeout=15)[0]
    assert "tuk-" not in output
    assert config_path.stat().st_mtime_ns == before


def test_existing_config_settings_are_kept(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text('timeout = 12.5\n\n[profiles.work]\nregion = "eu"\n')
    with server_process(
        "--data-dir", str(tmp_path / "data"), "--config-path", str(config_path)
    ) as (endpoint, _):
        config = tomllib.loads(config_path.read_text())
    assert config["api_key"].startswith("tuk-")
    assert config["endpoint_url"] == endpoint
    assert config["timeout"] == 12.5
    assert config["profiles"] == {"work": {"region": "eu"}}


def test_no_write_config_prints_the_key_only(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    with server_process(
        "--data-dir",
        str(tmp_path / "data"),
        "--config-path",
        str(config_path),
        "--no-write-config",
    ) as (endpoint, process):
        process.terminate()
        output = process.communicate(timeout=15)[0]
    assert not config_path.exists()
    key = key_in_output(output)
    with server_process("--data-dir", str(tmp_path / "data"), "--no-write-config") as (
        endpoint,
        _,
    ):
        assert organizations(endpoint, key).status_code == 200


def test_bad_org_option_is_rejected(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lamina_server", "--org", "Not_Valid", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "must match" in result.stderr
    assert not (tmp_path / "metadata.db").exists()


def test_create_user_command(local_server: LocalServer, unique_name) -> None:
    username = unique_name("user")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "create-user",
            username,
            "--org",
            local_server.org,
            *data_args(local_server),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("tuk-")
    response = organizations(local_server.endpoint_url, key)
    assert [org["name"] for org in response.json()["results"]] == [local_server.org]
    # Listing members is ListMembers, which the new member's default ReadWrite does not grant.
    members = httpx.get(
        f"{local_server.endpoint_url}/api/v1/organizations/{local_server.org}/members",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
    ).json()["results"]
    assert username in {member["username"] for member in members}

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "create-user",
            username,
            *data_args(local_server),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_lamina_server_entry_point_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lamina.cli.main(["server", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--data-dir", "--org", "--config-path", "--no-write-config"):
        assert option in out


def test_lamina_console_script_runs_the_server(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("lamina")
    if not script.exists():
        pytest.skip("the lamina console script is not installed in this environment")
    port = _free_port()
    server = LocalServer(data_dir=tmp_path, port=port)
    process = subprocess.Popen(
        [
            str(script),
            "server",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--config-path",
            str(server.config_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not server.config_path.exists() or not _healthy(server.endpoint_url):
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        key = tomllib.loads(server.config_path.read_text())["api_key"]
        assert organizations(server.endpoint_url, key).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert os.path.exists(tmp_path / "metadata.db")


def _healthy(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/healthz").status_code == 200
    except httpx.HTTPError:
        return False
