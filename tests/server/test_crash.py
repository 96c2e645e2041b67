"""Crash safety: SIGKILL the server mid-upload and mid-commit, restart it on the same data.

Every object ever sent has unique bytes, so whatever the kill interrupted, the restarted server
must show a log whose every commit lists only complete objects that read back byte-exact, with
each commit all there or not there at all, and no upload debris left in the blob store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer

REPO = "crash"


class Writer:
    """Talks to one repository; remembers the bytes it sent for every path."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.sent: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.endpoint_url}/api/v1/organizations/{self.server.org}"
            f"/repositories/{REPO}",
            headers={"Authorization": f"Bearer {self.server.api_key}"},
            timeout=30.0,
        )

    def session(self, api: httpx.Client) -> str:
        response = api.post("/sessions")
        assert response.status_code == 201, response.text
        session_id: str = response.json()["session_id"]
        return session_id

    def put_alone(self, session_id: str, path: str, size: int) -> None:
        with self.client() as api:
            self.put(api, session_id, path, size)

    def put(self, api: httpx.Client, session_id: str, path: str, size: int) -> None:
        data = os.urandom(size)
        with self.lock:
            self.sent[path] = data
        params = {"session_id": session_id, "path": path}
        target = api.put("/object", params=params).json()

        def slowly() -> Iterator[bytes]:  # a body in flight long enough to be cut by the kill
            for start in range(0, len(data), 64 * 1024):
                yield data[start : start + 64 * 1024]
                time.sleep(0.002)

        etag = httpx.put(target["upload_url"], content=slowly()).headers["etag"].strip('"')
        response = api.post(
            "/object/finalize",
            params=params,
            json={"upload_token": target["upload_token"], "checksum": etag},
        )
        assert response.status_code == 201, response.text

    def commit(self, api: httpx.Client, session_id: str, message: str) -> str:
        response = api.post(f"/sessions/{session_id}", json={"message": message})
        assert response.status_code == 200, response.text
        commit_id: str = response.json()["commit_id"]
        return commit_id


def _background(target: Any, *args: Any) -> threading.Thread:
    def run() -> None:
        # the server may be killed under it
        with contextlib.suppress(httpx.HTTPError, AssertionError, KeyError, ValueError):
            target(*args)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _pages(api: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, "amount": 1000, **({"after": after} if after else {})}
        response = api.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        results += body["results"]
        if not body["pagination"]["has_more"]:
            return results
        after = body["pagination"]["next_offset"]


def _read(api: httpx.Client, path: str, **params: str) -> bytes:
    response = api.get("/object", params={"path": path, **params}, follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(data_dir=tmp_path / "data") as started:
        org = httpx.post(
            f"{started.endpoint_url}/api/v1/organizations/{started.org}/repositories",
            headers={"Authorization": f"Bearer {started.api_key}"},
            json={"name": REPO},
        )
        assert org.status_code == 201, org.text
        yield started


@pytest.mark.local_blobs_only("counts the local folder's temporary files")
@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.05, 0.3, 0.8])
def test_sigkill_mid_upload_and_mid_commit(server: LocalServer, kill_after: float) -> None:
    writer = Writer(server)
    with writer.client() as api:
        # committed before the crash: must survive whole
        first = writer.session(api)
        for index in range(12):
            writer.put(api, first, f"base/{index:02d}", 50_000 + index)
        base_commit = writer.commit(api, first, "base")

        # a session with many staged objects whose commit the kill may interrupt
        big = writer.session(api)
        with ThreadPoolExecutor(8) as pool:
            puts = [
                pool.submit(writer.put_alone, big, f"batch/{i:03d}", 3_000 + i) for i in range(60)
            ]
            for put in puts:
                put.result()
        committing = _background(writer.commit, api, big, "batch")
        # and uploads in flight into an open session
        loose = writer.session(api)
        for index in range(6):
            _background(writer.put_alone, loose, f"loose/{index}", 1_500_000 + index)

        time.sleep(kill_after)
        server.kill()
        committing.join(timeout=30)

    server.start()
    with writer.client() as api:
        log = _pages(api, "/log")
        messages = [commit["message"] for commit in log]
        assert base_commit in [commit["id"] for commit in log]
        assert messages[-1] == "Repository created"
        assert messages[-2] == "base"
        assert set(messages) <= {"Repository created", "base", "batch"}
        ids = {commit["id"] for commit in log}
        for commit in log:
            assert set(commit["parents"]) <= ids

        for commit in log:
            listed = _pages(api, "/objects", ref=commit["id"])
            paths = {item["path"] for item in listed}
            expected = {p for p in writer.sent if p.startswith("base/")}
            if commit["message"] == "batch":
                expected |= {p for p in writer.sent if p.startswith("batch/")}
            if commit["message"] == "Repository created":
                expected = set()
            assert paths == expected, commit["message"]  # whole commits only
            for item in listed:
                data = writer.sent[item["path"]]
                assert item["entry"]["size"] == len(data)
                assert item["entry"]["e_tag"] == hashlib.md5(data).hexdigest()
                assert _read(api, item["path"], ref=commit["id"]) == data

        # whatever the open session had finalized is complete, byte for byte
        for record in _pages(api, "/changes", session_id=loose):
            assert record["entry"] is not None
            assert _read(api, record["path"], session_id=loose) == writer.sent[record["path"]]

    blobs = server.data_dir / "blobs"
    assert os.listdir(blobs / "tmp") == []
    for name in os.listdir(blobs / "incoming"):  # uploaded but never finalized: whole files
        sizes = {len(data) for data in writer.sent.values()}
        assert (blobs / "incoming" / name).stat().st_size in sizes
