"""Shared fixtures: one real reference server on loopback for the whole test session.

Tests that need isolation create their own organization/repository with a unique name
(``unique_name``) instead of restarting the server.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from lamina.testing import LocalServer
from tests import blob_stores, postgres

if TYPE_CHECKING:
    from lamina_server.storage.blobs.backend import BlobBackend
    from tests.server.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[postgres.PostgresCluster | None]:
    """With ``LAMINA_TEST_DATABASE=postgres``: one PostgreSQL cluster for the session, and every
    server the tests start on it: each :class:`LocalServer` and each ``Database`` opened on a
    data directory's SQLite file get that directory's database in the cluster (the same one
    for every server on that directory). Otherwise None: SQLite, as shipped."""
    if not postgres.enabled():
        yield None
        return
    from lamina_server.storage import db as storage_db

    cluster = postgres.CLUSTER = postgres.PostgresCluster().start()
    start = LocalServer.start
    init = storage_db.Database.__init__

    def start_on_postgres(server: LocalServer) -> LocalServer:
        if server.database_url is None:
            server.database_url = cluster.database_for(server.data_dir)
        return start(server)

    def init_on_postgres(self: storage_db.Database, url: str) -> None:
        prefix = storage_db.sqlite_url(Path("/"))[: -len("/metadata.db")]
        if url.startswith(prefix) and url.endswith("/metadata.db"):
            url = cluster.database_for(Path(url[len(prefix) : -len("/metadata.db")]))
        init(self, url)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalServer, "start", start_on_postgres)
        patch.setattr(storage_db.Database, "__init__", init_on_postgres)
        try:
            yield cluster
        finally:
            postgres.CLUSTER = None
            cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def blob_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS | None]:
    """With ``LAMINA_TEST_BLOB_STORE=s3``: one SeaweedFS for the session, and every server the
    tests start keeps its object bytes in it (:func:`tests.blob_stores.url_for` its data
    directory): each :class:`LocalServer`, and each app built in this process. Otherwise
    None: the local folder, as shipped."""
    if not blob_stores.enabled():
        yield None
        return
    from lamina_server import app as server_app
    from tests.server import seaweedfs

    weed = seaweedfs.start(tmp_path_factory.mktemp("seaweedfs"))
    weed.create_bucket(blob_stores.BUCKET)
    blob_stores.STORE = weed
    start = LocalServer.start
    open_store = server_app.open_blob_store

    def start_on_s3(server: LocalServer) -> LocalServer:
        if "--blob-store" not in server.server_args:
            server.server_args += tuple(blob_stores.args_for(server.data_dir))
        return start(server)

    def open_on_s3(url: str | None, root: Path, environ: Mapping[str, str]) -> BlobBackend:
        return open_store(url or blob_stores.url_for(root.parent), root, environ)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalServer, "start", start_on_s3)
        patch.setattr(server_app, "open_blob_store", open_on_s3)
        try:
            yield weed
        finally:
            blob_stores.STORE = None
            weed.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, tests of what only SQLite has (``@pytest.mark.sqlite_only``) skip; with
    the blobs in S3, tests of the local folder and its data plane
    (``@pytest.mark.local_blobs_only``) skip. Each says why."""
    skipped = {
        "sqlite_only": ("SQLite only", "tests the embedded SQLite database", postgres.enabled()),
        "local_blobs_only": (
            "local blob store only",
            "tests the local folder's data plane",
            blob_stores.enabled(),
        ),
    }
    for name, (label, default, active) in skipped.items():
        if not active:
            continue
        for item in items:
            marker = item.get_closest_marker(name)
            if marker is not None:
                reason = marker.args[0] if marker.args else default
                item.add_marker(pytest.mark.skip(reason=f"{label}: {reason}"))


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A started :class:`LocalServer` on a temporary data dir (bootstrap org ``local``)."""
    server = LocalServer(data_dir=tmp_path_factory.mktemp("lamina-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """``unique_name("repo")`` -> ``"repo-1f2e3d4c5b6a"``: a fresh, valid org/repo name."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def api(local_server: LocalServer) -> Iterator[httpx.Client]:
    """A raw HTTP client on ``<endpoint>/api/v1`` authenticated with the bootstrap key."""
    with httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        timeout=60.0,
    ) as client:
        yield client


@pytest.fixture
def repository(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> str:
    """A fresh repository in the bootstrap organization, as ``"org/repo"``."""
    name = unique_name("repo")
    response = api.post(f"/organizations/{local_server.org}/repositories", json={"name": name})
    assert response.status_code == 201, response.text
    return f"{local_server.org}/{name}"


class RepoHttp:
    """Raw-HTTP steps on one repository, for server tests: sessions, staged puts and deletes,
    commits, and reads of HEAD. Each method asserts its request succeeded."""

    def __init__(self, api: httpx.Client, repository: str) -> None:
        self.api = api
        self.repository = repository
        org, name = repository.split("/")
        self.base = f"/organizations/{org}/repositories/{name}"

    def session(self) -> str:
        response = self.api.post(f"{self.base}/sessions")
        assert response.status_code == 201, response.text
        session_id: str = response.json()["session_id"]
        return session_id

    def put(self, session_id: str, path: str, data: bytes) -> None:
        """The single-upload protocol: ask for a URL, upload the bytes, finalize."""
        query = {"session_id": session_id, "path": path}
        started = self.api.put(f"{self.base}/object", params=query)
        assert started.status_code == 200, started.text
        ticket = started.json()
        uploaded = httpx.put(
            ticket["upload_url"],
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60.0,
        )
        assert uploaded.is_success, uploaded.text
        finalized = self.api.post(
            f"{self.base}/object/finalize",
            params=query,
            json={
                "upload_token": ticket["upload_token"],
                "content_type": "application/octet-stream",
                "checksum": uploaded.headers["etag"].strip('"'),
                "size_bytes": len(data),
            },
        )
        assert finalized.status_code == 201, finalized.text

    def delete(self, session_id: str, path: str) -> None:
        response = self.api.delete(
            f"{self.base}/object", params={"session_id": session_id, "path": path}
        )
        assert response.status_code == 204, response.text

    def commit(self, session_id: str, message: str = "change") -> str:
        response = self.api.post(f"{self.base}/sessions/{session_id}", json={"message": message})
        assert response.status_code == 200, response.text
        commit_id: str = response.json()["commit_id"]
        return commit_id

    def tree(self, **params: str) -> dict[str, str]:
        """Every object at HEAD (or at ``ref=``/``session_id=``): path -> e_tag."""
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            query: dict[str, str | int] = {**params, "amount": 1000}
            if after:
                query["after"] = after
            response = self.api.get(f"{self.base}/objects", params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            for item in body["results"]:
                found[item["path"]] = item["entry"]["e_tag"]
            if not body["pagination"]["has_more"]:
                return found
            after = body["pagination"]["next_offset"]

    def read(self, path: str, **params: str) -> bytes:
        response = self.api.get(
            f"{self.base}/object", params={"path": path, **params}, follow_redirects=True
        )
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture
def repo_http(api: httpx.Client, repository: str) -> RepoHttp:
    """:class:`RepoHttp` on a fresh repository."""
    return RepoHttp(api, repository)


@pytest.fixture
def new_repo_http(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> Callable[[], RepoHttp]:
    """Makes further fresh repositories, each wrapped in a :class:`RepoHttp`."""

    def make() -> RepoHttp:
        name = unique_name("repo")
        response = api.post(f"/organizations/{local_server.org}/repositories", json={"name": name})
        assert response.status_code == 201, response.text
        return RepoHttp(api, f"{local_server.org}/{name}")

    return make


class FakeSandboxSockets:
    """A websocket server that speaks the sandbox ``/exec`` and ``/terminal`` frames with a few
    scripted commands, for the SDK's protocol tests (the real server runs real commands).

    Commands: ``["prompt"]`` prints ``ready``, echoes its stdin upper-cased and exits 3;
    ``["burst", n, size]`` writes ``n`` chunks of ``size`` bytes to each stream in turn;
    ``["interleave"]`` writes ``a`` ``b`` ``c`` to out, err, out between frames to ignore;
    ``["launch"]`` prints the LAUNCH body; ``["vanish"]`` closes without an exit frame.
    Requests without the key ``tuk-fake`` get 401, paths under repository ``refused`` 403.
    """

    API_KEY = "tuk-fake"

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.resizes: list[dict[str, int]] = []
        self._server = serve(
            self._handle, "127.0.0.1", 0, process_request=self._check, compression=None
        )
        self.endpoint_url = f"http://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def _check(self, connection: Any, request: Any) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        status, code = 0, ""
        if request.headers.get("Authorization") != f"Bearer {self.API_KEY}":
            status, code = 401, "unauthorized"
        elif "/repositories/refused/" in request.path:
            status, code = 403, "forbidden"
        if not status:
            return None
        body = json.dumps({"message": f"{code} here", "code": code, "request_id": "rq-1"})
        headers = Headers([("Content-Type", "application/json")])
        headers["Content-Length"] = str(len(body))
        return Response(status, code, headers, body.encode())

    def _handle(self, ws: Any) -> None:
        if ws.request.path.endswith("/terminal"):
            self._terminal(ws)
            return
        launch = ws.recv()
        assert launch[0] == 0x00
        body = json.loads(launch[1:])
        command = body["cmd"]
        if command == ["prompt"]:
            ws.send(b"\x03ready\n")
            received = b""
            while (frame := ws.recv())[0] != 0x02:
                received += frame[1:]
            ws.send(b"\x03" + received.upper())
            ws.send(b"\x04done\n")
            ws.send(b'\x05{"exit_code": 3}')
        elif command[0] == "burst":
            for _ in range(int(command[1])):
                ws.send(b"\x03" + b"o" * int(command[2]))
                ws.send(b"\x04" + b"e" * int(command[2]))
            ws.send(b'\x05{"exit_code": 0}')
        elif command == ["interleave"]:
            for frame in (b"\x03a", "text", b"\x04b", b"", b"\x09?", b"\x03c"):
                ws.send(frame)
            ws.send(b'\x05{"exit_code": 0}')
        elif command == ["launch"]:
            ws.send(b"\x03" + json.dumps(body).encode())
            ws.send(b'\x05{"exit_code": 0}')
        elif command == ["vanish"]:
            ws.send(b"\x03partial")
        ws.close()

    def _terminal(self, ws: Any) -> None:
        ws.send(b"\x01$ ")
        while True:
            frame = ws.recv()
            if frame[0] == 0x02:
                self.resizes.append(json.loads(frame[1:]))
            elif frame[1:] == b"exit\n":
                ws.send(b'\x03{"exited": true, "exit_code": 0}')
                ws.close()
                return
            else:
                ws.send(b"\x01" + frame[1:])


@pytest.fixture(scope="session")
def fake_sandbox_sockets() -> Iterator[FakeSandboxSockets]:
    server = FakeSandboxSockets()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def sandbox_routes(local_server: LocalServer) -> None:
    """Skips the test while the server has no sandbox routes (the router lands separately);
    any other answer, including an error, lets the test run and see it."""
    org = local_server.org
    with httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        timeout=60.0,
    ) as api:
        response = api.get(f"/organizations/{org}/repositories/no-such-repo-probe/sandboxes")
    if response.status_code == 404 and response.json().get("message", "").startswith(
        "no route for"
    ):
        pytest.skip("the server has no sandbox routes yet")
