"""Raw-wire steps on sandboxes for server tests: create, wait, and the websocket frames, spoken
with httpx and websockets' own client (no SDK), so the tests pin the wire itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.conftest import RepoHttp

TERMINAL = ("done", "errored", "failed", "cancelled")


@dataclass
class ExecResult:
    stdout: bytes = b""
    stderr: bytes = b""
    exit: dict[str, Any] = field(default_factory=dict)
    order: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        code: int = self.exit["exit_code"]
        return code


class Sandboxes:
    def __init__(self, repo: RepoHttp, endpoint_url: str, api_key: str) -> None:
        self.repo = repo
        self.api = repo.api
        self.base = f"{repo.base}/sandboxes"
        self.ws_base = endpoint_url.replace("http://", "ws://") + "/api/v1" + self.base
        self.api_key = api_key

    def create(self, **body: Any) -> str:
        body.setdefault("image", "host")
        response = self.api.post(self.base, json=body)
        assert response.status_code == 201, response.text
        sandbox_id: str = response.json()["sandbox_id"]
        return sandbox_id

    def status(self, sandbox_id: str) -> dict[str, Any]:
        response = self.api.get(f"{self.base}/{sandbox_id}/status")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self, sandbox_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(sandbox_id)
            if status["status"] in until:
                return status
            assert time.monotonic() < deadline, f"sandbox {sandbox_id} stuck in {status}"
            time.sleep(0.02)

    def running(self, **body: Any) -> str:
        sandbox_id = self.create(**body)
        status = self.wait(sandbox_id, ("running", *TERMINAL))
        assert status["status"] == "running", status
        return sandbox_id

    def logs(self, sandbox_id: str) -> str:
        response = self.api.get(f"{self.base}/{sandbox_id}/logs/stdout")
        assert response.status_code == 200, response.text
        return response.text

    @contextmanager
    def socket(self, sandbox_id: str, kind: str = "exec") -> Iterator[ClientConnection]:
        with connect(
            f"{self.ws_base}/{sandbox_id}/{kind}",
            additional_headers={"Authorization": f"Bearer {self.api_key}"},
            open_timeout=10,
        ) as ws:
            yield ws

    def exec(
        self,
        sandbox_id: str,
        cmd: list[str] | str,
        *,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        with self.socket(sandbox_id) as ws:
            launch: dict[str, Any] = {"cmd": argv}
            if env is not None:
                launch["env"] = env
            if cwd is not None:
                launch["cwd"] = cwd
            ws.send(b"\x00" + json.dumps(launch).encode())
            if stdin is not None:
                if stdin:
                    ws.send(b"\x01" + stdin)
                ws.send(b"\x02")
            return read_exec(ws)

    def commit_files(self, files: dict[str, bytes]) -> str:
        session = self.repo.session()
        for path, data in files.items():
            self.repo.put(session, path, data)
        return self.repo.commit(session)


def read_exec(ws: ClientConnection, timeout: float = 60) -> ExecResult:
    result = ExecResult()
    while True:
        frame = ws.recv(timeout=timeout)
        assert isinstance(frame, bytes), frame
        kind, payload = frame[0], frame[1:]
        if kind == 3:
            result.stdout += payload
            result.order.append(("stdout", payload))
        elif kind == 4:
            result.stderr += payload
            result.order.append(("stderr", payload))
        elif kind == 5:
            result.exit = json.loads(payload)
            return result


def handshake_status(url: str, api_key: str | None) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to a websocket upgrade the server refuses."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    response = httpx.get(url.replace("ws://", "http://"), headers=headers, timeout=10)
    return response.status_code, response.json() if response.content else {}
