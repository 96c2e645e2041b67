"""``lamina server`` as a new user meets it: it listens before it creates anything, and never
takes over another server's config file.

Every test runs its own server subprocess (``python -m lamina_server``) on real sockets.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@dataclass
class Server:
    endpoint: str
    host: str
    port: int
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def peak_rss_bytes(self) -> int:
        """The most memory the server process has held (its resident set's high-water mark)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.endpoint}/api/v1",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30.0,
        )


def lamina_server(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m lamina_server <args>`` run to completion (for servers that must not start)."""
    return subprocess.run(
        [sys.executable, "-m", "lamina_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def serving(port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m lamina_server --port <port> <args>`` once it answers; stopped on exit."""
    with subprocess.Popen(
        [sys.executable, "-m", "lamina_server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not _healthy(f"http://127.0.0.1:{port}"):
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            process.communicate(timeout=15)


@contextmanager
def running_server(tmp_path: Path, *args: str, name: str = "server") -> Iterator[Server]:
    """A server on a port of its own choosing (``--port 0``), on ``tmp_path/<name>``."""
    data_dir = tmp_path / name
    config_path = tmp_path / f"{name}.toml"
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "lamina_server", "--port", "0"),
                *("--data-dir", str(data_dir), "--config-path", str(config_path), *args),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            if config_path.exists():
                config = tomllib.loads(config_path.read_text())
                endpoint = config["endpoint_url"]
                if _healthy(endpoint):
                    break
            assert time.monotonic() < deadline, f"server did not start: {log_path.read_text()}"
            time.sleep(0.05)
        url = urllib.parse.urlsplit(endpoint)
        assert url.hostname is not None and url.port is not None
        yield Server(endpoint, url.hostname, url.port, config["api_key"], process, log_path)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _healthy(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# --- listening first, and the config file -------------------------------------------------


def test_a_taken_port_fails_before_anything_is_created(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lamina_server(
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--config-path",
            str(tmp_path / "config.toml"),
        )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another server running there? choose another --port)"
    ]
    assert "tuk-" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "config.toml").exists()


def test_a_second_server_does_not_take_over_the_config_file(tmp_path: Path) -> None:
    config_path = tmp_path / "first.toml"
    with running_server(tmp_path, name="first") as first:
        before = config_path.read_bytes()
        assert tomllib.loads(before.decode())["server_data_dir"] == str(tmp_path / "first")
        # Another data directory on another port, pointed at the same config file.
        result = lamina_server(
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "second"),
            "--config-path",
            str(config_path),
        )
        assert result.returncode == 1
        assert f"{config_path}: it holds the API key of the server at {first.endpoint}" in (
            result.stderr
        )
        assert "--config-path FILE" in result.stderr and "--no-write-config" in result.stderr
        assert "tuk-" not in result.stdout + result.stderr
        assert not (tmp_path / "second").exists()
        assert config_path.read_bytes() == before
        port = first.port

    # The first server stopped: its port is free, but its data directory still holds the
    # key's owner, so a first start of another data directory on that port is refused too.
    result = lamina_server(
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "second"),
        "--config-path",
        str(config_path),
    )
    assert result.returncode == 1
    assert f"data directory {tmp_path / 'first'}" in result.stderr
    assert not (tmp_path / "second").exists()
    assert config_path.read_bytes() == before

    # The flags the message names work: --no-write-config starts it and prints its key.
    with serving(
        port,
        "--data-dir",
        str(tmp_path / "second"),
        "--config-path",
        str(config_path),
        "--no-write-config",
    ) as process:
        process.terminate()
        output = process.communicate(timeout=15)[0]
    assert "API key (shown only once): tuk-" in output
    assert config_path.read_bytes() == before


def test_a_config_file_of_a_vanished_data_dir_is_taken_over(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        'api_key = "tuk-old"\nendpoint_url = "http://127.0.0.1:1"\n'
        f'server_data_dir = "{tmp_path / "gone"}"\ntimeout = 3\n'
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Another address: refused, whatever became of its data directory.
    refused = lamina_server(
        "--port", str(port), "--data-dir", str(tmp_path / "data"), "--config-path", str(config_path)
    )
    assert refused.returncode == 1
    assert "the server at http://127.0.0.1:1" in refused.stderr

    # The same address, and the data directory it names is gone: the file is this server's.
    config_path.write_text(
        f'api_key = "tuk-old"\nendpoint_url = "http://127.0.0.1:{port}"\n'
        f'server_data_dir = "{tmp_path / "gone"}"\ntimeout = 3\n'
    )
    with serving(port, "--data-dir", str(tmp_path / "data"), "--config-path", str(config_path)):
        pass
    config = tomllib.loads(config_path.read_text())
    assert config["api_key"].startswith("tuk-") and config["api_key"] != "tuk-old"
    assert config["server_data_dir"] == str(tmp_path / "data")
    assert config["timeout"] == 3
