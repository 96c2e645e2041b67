"""Run the Lamina reference server for your own tests.

:class:`LocalServer` starts ``python -m lamina_server`` (installed with the ``server`` extra) as a
subprocess on a free loopback port with its own data directory, waits until it answers, and
hands out clients bound to the API key the server created on first start::

    from lamina.testing import LocalServer

    with LocalServer() as server:
        client = server.client()
        repo = client.organization(server.org).repositories.create("scratch")

The server runs in a separate process, so it works the same from blocking and async tests
(``async with LocalServer() as server``). Its output goes to ``<data_dir>/server.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import anyio.to_thread
import httpx

from lamina._config import read_config_file

if TYPE_CHECKING:
    from lamina import AsyncClient, Client

__all__ = ["LocalServer", "LocalServerError"]

_STOP_TIMEOUT = 15.0


class LocalServerError(RuntimeError):
    """The server did not start (the message ends with the tail of its log)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """The reference server in a subprocess on ``127.0.0.1``.

    ``data_dir`` defaults to a fresh temporary directory, removed when the ``with`` block ends;
    a directory you pass is kept. ``stop()`` shuts the server down gracefully, ``kill()``
    SIGKILLs it (for crash tests); ``start()`` again restarts it on the same port and data.
    ``server_args`` are further ``lamina server`` flags (e.g. ``["--sandbox-memory-limit",
    "256M"]``). ``blob_store`` keeps object bytes in S3 (``lamina server --blob-store``,
    e.g. ``"s3://bucket?endpoint=http://127.0.0.1:8333"``).
    ``database_url`` puts the metadata in that database (``--database-url``, e.g.
    ``postgresql://user@127.0.0.1:5432/db``) instead of SQLite in the data directory.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        org: str = "local",
        port: int | None = None,
        startup_timeout: float = 30.0,
        server_args: Sequence[str] = (),
        blob_store: str | None = None,
        database_url: str | None = None,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="lamina-server-")) if data_dir is None else Path(data_dir)
        )
        self.org = org
        self.port = port if port is not None else _free_port()
        self.startup_timeout = startup_timeout
        self.server_args = tuple(server_args)
        if blob_store is not None:
            self.server_args += ("--blob-store", blob_store)
        self.database_url = database_url
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.data_dir / "config.toml"
        self.log_path = self.data_dir / "server.log"
        self.api_key = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalServer({self.endpoint_url!r}, data_dir={str(self.data_dir)!r}, {state})"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (for tests that watch its resources)."""
        return self._process.pid if self._process is not None and self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalServer:
        """Start the server (no-op when running) and wait until ``/healthz`` answers."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "lamina_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--org",
            self.org,
            "--config-path",
            str(self.config_path),
            *(["--database-url", self.database_url] if self.database_url else []),
            *self.server_args,
        ]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_until_healthy()
            self.api_key = self._read_api_key()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    raise LocalServerError(f"the server exited during startup{self._log_tail()}")
                try:
                    if http.get(f"{self.endpoint_url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"the server did not answer within {self.startup_timeout:g}s"
                        f"{self._log_tail()}"
                    )
                time.sleep(0.05)

    def _read_api_key(self) -> str:
        key = read_config_file(self.config_path).get("api_key")
        if not key:
            raise LocalServerError(f"the server wrote no api_key to {self.config_path}")
        return key

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"; server log ({self.log_path}):\n{tail}" if tail else ""

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL after 15 s."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        process = self._process
        if process is not None and process.poll() is None:
            if sys.platform == "win32":
                process.kill()
            else:
                process.send_signal(signal.SIGKILL)
            process.wait()
        self._release()

    def _release(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and remove the data directory if this object created it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def client(self) -> Client:
        """A blocking :class:`lamina.Client` for this server."""
        from lamina import Client

        return Client(api_key=self.api_key, endpoint_url=self.endpoint_url)

    def async_client(self) -> AsyncClient:
        """A :class:`lamina.AsyncClient` for this server."""
        from lamina import AsyncClient

        return AsyncClient(api_key=self.api_key, endpoint_url=self.endpoint_url)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> LocalServer:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.close)
