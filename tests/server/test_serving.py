"""``lamina server`` as a new user meets it, and as an abusive client does: it listens before it
creates anything, never takes over another server's config file, caps and times the reading
of request headers, closes idle connections, limits open connections, and logs a client that
disconnects mid-upload as just that.

Every test runs its own server subprocess (``python -m lamina_server``) on real sockets.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lamina_server.bootstrap import bootstrap, config_conflict
from lamina_server.config import ServerConfig
from lamina_server.identity import Identity
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema

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


def read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def envelope(response: bytes) -> dict[str, str]:
    body: dict[str, str] = json.loads(response.split(b"\r\n\r\n", 1)[1])
    return body


def upload_ticket(server: Server, path: str) -> urllib.parse.SplitResult:
    """The signed upload URL of a new object ``path`` in a fresh repository's session."""
    with server.api() as api:
        repos = "/organizations/local/repositories"
        name = f"r{time.monotonic_ns()}"
        assert api.post(repos, json={"name": name}).status_code == 201
        session = api.post(f"{repos}/{name}/sessions").json()["session_id"]
        ticket = api.put(f"{repos}/{name}/object", params={"session_id": session, "path": path})
        assert ticket.status_code == 200, ticket.text
    return urllib.parse.urlsplit(ticket.json()["upload_url"])


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


def test_config_conflict_rules(tmp_path: Path) -> None:
    endpoint, data_dir = "http://127.0.0.1:8711", tmp_path / "data"
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "metadata.db").touch()
    path = tmp_path / "config.toml"

    def conflict(text: str | None) -> str | None:
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
        return config_conflict(path, endpoint, data_dir)

    assert conflict(None) is None
    assert conflict('timeout = 3\nendpoint_url = "http://elsewhere"\n') is None  # no key
    assert conflict(f'api_key = "k"\nendpoint_url = "{endpoint}/"\n') is None
    assert (
        conflict(f'api_key = "k"\nendpoint_url = "{endpoint}"\nserver_data_dir = "{data_dir}"\n')
        is None
    )
    gone = tmp_path / "gone"
    assert (
        conflict(f'api_key = "k"\nendpoint_url = "{endpoint}"\nserver_data_dir = "{gone}"\n')
        is None
    )
    assert (
        conflict(f'api_key = "k"\nendpoint_url = "{endpoint}"\nserver_data_dir = "{other_dir}"\n')
        == f"it holds the API key of the server with data directory {other_dir}"
    )
    assert conflict('api_key = "k"\nendpoint_url = "http://elsewhere:1"\n') == (
        "it holds the API key of the server at http://elsewhere:1"
    )
    # No endpoint_url: the key is for the SDK's default address.
    assert conflict('api_key = "k"\n') == (
        "it holds the API key of the server at http://127.0.0.1:8710"
    )


@pytest.mark.anyio
async def test_bootstrap_without_the_cli_leaves_another_servers_config_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text('api_key = "tuk-theirs"\nendpoint_url = "http://127.0.0.1:1"\n')
    before = config_path.read_bytes()
    config = ServerConfig(data_dir=tmp_path, port=8799, config_path=config_path)
    db = Database(sqlite_url(tmp_path))
    try:
        await ensure_schema(db)
        await bootstrap(config, Identity(db))
    finally:
        await db.dispose()
    out = capsys.readouterr().out
    assert "API key (shown only once): tuk-" in out
    assert f"Did not write {config_path}: it holds the API key of the server at " in out
    assert "LAMINA_ENDPOINT_URL=http://127.0.0.1:8799" in out
    assert config_path.read_bytes() == before


# --- connection limits ----------------------------------------------------------------------


def test_slow_and_idle_connections_are_closed(tmp_path: Path) -> None:
    with running_server(tmp_path, "--header-timeout", "1", "--keep-alive-timeout", "1") as server:
        address = (server.host, server.port)
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 60 + b"\r\n\r\n"
        slow = socket.create_connection(address)
        idle = socket.create_connection(address)
        results: dict[str, object] = {}

        def trickle() -> None:
            started = time.monotonic()
            try:
                for byte in head:  # 80 bytes, one every 50 ms: 4 s in all
                    slow.send(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                pass
            results["cut_after"] = time.monotonic() - started

        sender = threading.Thread(target=trickle)
        sender.start()
        # Others are served meanwhile.
        with httpx.Client() as other:
            for _ in range(10):
                assert other.get(f"{server.endpoint}/healthz").status_code == 200
                time.sleep(0.1)
        answer = read_response(slow)
        sender.join()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert envelope(answer)["code"] == "request_timeout"
        assert float(str(results["cut_after"])) < 3.5
        # A connection that never sent a byte is closed too, without an answer.
        assert read_response(idle, timeout=5) == b""
        # So is one left idle after a response.
        kept = http.client.HTTPConnection(server.host, server.port)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b'{"status":"ok"}'
        time.sleep(1.5)
        assert kept.sock is not None and read_response(kept.sock, timeout=5) == b""
        slow.close()
        idle.close()
        assert _healthy(server.endpoint)


def test_a_request_that_is_not_http_gets_the_error_envelope(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n")
            answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"content-type: application/json" in answer.lower()
        assert envelope(answer)["code"] == "bad_request"
        assert _healthy(server.endpoint)


def test_oversized_headers_are_refused_without_buffering_them(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        address = (server.host, server.port)
        # Just under the default cap (64 KiB): served.
        with socket.create_connection(address) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
                + b"a" * 60_000
                + b"\r\n\r\n"
            )
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")

        # 64 MiB of one header: refused with 431, and not held in memory.
        peak = server.peak_rss_bytes()
        with socket.create_connection(address) as sock:

            def send_big_header() -> None:
                try:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                    chunk = b"a" * (1 << 20)
                    for _ in range(64):
                        sock.sendall(chunk)
                except OSError:
                    pass

            sender = threading.Thread(target=send_big_header)
            sender.start()
            answer = read_response(sock)
            sender.join()
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        body = envelope(answer)
        assert body["code"] == "request_header_too_large"
        assert "65536 bytes" in body["message"]
        assert server.peak_rss_bytes() - peak < 16 << 20
        assert _healthy(server.endpoint)

        # A request whose first read holds far more body than the cap is not mistaken for one.
        url = upload_ticket(server, "big.bin")
        body_bytes = b"b" * (1 << 20)
        with socket.create_connection(address) as sock:
            sock.sendall(
                f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Length: {len(body_bytes)}\r\n\r\n".encode()
                + body_bytes
            )
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_connections_past_the_limit_are_answered_503(tmp_path: Path) -> None:
    with running_server(tmp_path, "--max-connections", "3") as server:
        open_ = [http.client.HTTPConnection(server.host, server.port) for _ in range(3)]
        for connection in open_:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() == b'{"status":"ok"}'

        extra = http.client.HTTPConnection(server.host, server.port)
        extra.request("GET", "/healthz")
        response = extra.getresponse()
        assert response.status == 503
        assert response.getheader("connection") == "close"
        assert response.getheader("retry-after") == "1"
        assert response.getheader("x-error-code") == "server_busy"
        body = json.loads(response.read())
        assert body["code"] == "server_busy"
        assert body["request_id"] == response.getheader("x-request-id")
        extra.close()

        # The open connections keep working.
        for connection in open_:
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200

        # Once one closes, a new connection is served.
        open_.pop().close()
        deadline = time.monotonic() + 5
        while True:
            fresh = http.client.HTTPConnection(server.host, server.port)
            fresh.request("GET", "/healthz")
            status = fresh.getresponse().status
            fresh.close()
            if status == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for connection in open_:
            connection.close()


# --- a client gone mid-upload ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 8 << 20], ids=["small", "large"])
def test_a_client_gone_mid_upload_is_logged_without_a_traceback(tmp_path: Path, size: int) -> None:
    with running_server(tmp_path) as server:
        url = upload_ticket(server, "half.bin")
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(
                f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
                + b"h" * (size // 2)
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while "client disconnected" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)

        # The server goes on serving, uploads included.
        again = upload_ticket(server, "whole.bin")
        response = httpx.put(urllib.parse.urlunsplit(again), content=b"w" * size, timeout=30)
        assert response.status_code == 200, response.text
        log = server.log()
    assert "INFO:     client disconnected during PUT /api/v1/blobs/upload" in log
    assert "Traceback" not in log
    assert "unhandled error" not in log
    assert "Exception in ASGI application" not in log
