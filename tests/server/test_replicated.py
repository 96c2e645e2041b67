"""Two server replicas on one PostgreSQL and one SeaweedFS: committers spread over both lose
no update and conflict exactly where their paths overlap; a key revoked on one is refused by
the other on the next request; a replica SIGKILLed mid-commit and mid-upload loses nothing it
acknowledged, and the other serves on; a sandbox one runs is reached through the other."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import md5
from pathlib import Path

import httpx
import pytest
import tilde
from websockets.sync.client import connect

from lamina.testing import LocalServer
from lamina_server.api.forwarding import FORWARDED
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from lamina_server.storage.blobs.sigv4 import Credentials, SigV4
from tests import postgres
from tests.conftest import RepoHttp
from tests.server import seaweedfs as weed
from tests.server.sandbox_wire import Sandboxes, handshake_status
from tests.server.seaweedfs import SeaweedFS

pytestmark = pytest.mark.slow
_CANNOT_RUN = BubblewrapRunner().check()
needs_sandboxes = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")

SHARED_KEYS = ("signing.key", "evidence.key", "secrets.key")  # what replicas must agree on


@dataclass
class Replica:
    """A second server process on the first one's database and bucket."""

    process: subprocess.Popen[bytes]
    endpoint_url: str
    log_path: Path

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Deployment:
    first: LocalServer
    second: Replica

    @property
    def endpoints(self) -> tuple[str, str]:
        return self.first.endpoint_url, self.second.endpoint_url

    def client(self, endpoint: str, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{endpoint}/api/v1",
            headers={"Authorization": f"Bearer {key or self.first.api_key}"},
            timeout=60.0,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def deployment(
    cluster: postgres.PostgresCluster,
    seaweedfs: SeaweedFS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    bucket = f"replicas-{uuid.uuid4().hex[:8]}"
    signer = SigV4(
        seaweedfs.endpoint, weed.REGION, bucket, Credentials(weed.ACCESS_KEY, weed.SECRET_KEY)
    )
    assert httpx.put(signer.url(""), headers=signer.headers("PUT", "", {})).status_code == 200
    database_url, blob_store = cluster.database_url(), seaweedfs.url(bucket, "data")
    root = tmp_path_factory.mktemp("replicas")
    with LocalServer(
        data_dir=root / "first",
        database_url=database_url,
        blob_store=blob_store,
        server_args=["--access-log"],
    ) as first:
        second_dir = root / "second"
        second_dir.mkdir(mode=0o700)
        for name in SHARED_KEYS:
            if (first.data_dir / name).exists():
                shutil.copy2(first.data_dir / name, second_dir / name)
        port = _free_port()
        log = (second_dir / "server.log").open("ab")
        command = [sys.executable, "-m", "lamina_server", "--port", str(port)]
        command += ["--data-dir", str(second_dir), "--no-write-config"]
        command += ["--database-url", database_url, "--blob-store", blob_store, "--access-log"]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        second = Replica(process, f"http://127.0.0.1:{port}", second_dir / "server.log")
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (second_dir / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{second.endpoint_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the second replica did not start"
            time.sleep(0.1)
        try:
            yield Deployment(first, second)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
            log.close()


def _repo(deployment: Deployment, name: str) -> str:
    with deployment.client(deployment.first.endpoint_url) as api:
        made = api.post(f"/organizations/{deployment.first.org}/repositories", json={"name": name})
        assert made.status_code == 201, made.text
    return f"{deployment.first.org}/{name}"


def test_committers_on_both_replicas_lose_no_update(deployment: Deployment) -> None:
    repository = _repo(deployment, "committers")
    clients = [deployment.client(endpoint) for endpoint in deployment.endpoints]
    repos = [RepoHttp(client, repository) for client in clients]
    # 32 sessions on the same base, half on each replica: 16 change only a path of their own;
    # the others also change one of 4 shared paths, 4 sessions per shared path.
    sessions = [repos[i % 2].session() for i in range(32)]

    def write(i: int) -> None:
        repo = repos[i % 2]
        repo.put(sessions[i], f"own/{i:02d}", f"own {i}".encode())
        if i >= 16:
            repo.put(sessions[i], f"shared/{(i - 16) // 4}", f"shared by {i}".encode())

    def commit(i: int) -> int:
        repo = repos[i % 2]
        return repo.api.post(
            f"{repo.base}/sessions/{sessions[i]}", json={"message": f"{i}"}
        ).status_code

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(write, range(32)))
        statuses = list(pool.map(commit, range(32)))
    try:
        assert statuses[:16] == [200] * 16, statuses  # disjoint changes all land
        for group in range(4):
            outcomes = sorted(statuses[16 + 4 * group : 20 + 4 * group])
            assert outcomes == [200, 409, 409, 409], (group, statuses)
        head = repos[1].tree()
        landed = {i for i, status in enumerate(statuses) if status == 200}
        assert {path for path in head if path.startswith("own/")} == {
            f"own/{i:02d}" for i in landed
        }
        for group in range(4):
            winner = next(i for i in landed if i >= 16 and (i - 16) // 4 == group)
            assert repos[0].read(f"shared/{group}") == f"shared by {winner}".encode()
    finally:
        for client in clients:
            client.close()


def test_the_tilde_sdk_writes_through_one_replica_and_reads_through_the_other(
    deployment: Deployment,
) -> None:
    first, second = deployment.endpoints
    repository = _repo(deployment, "tilde")
    data = os.urandom(70_000)
    with (
        tilde.Client(api_key=deployment.first.api_key, endpoint_url=second) as client,
        client.repository(repository).session() as session,
    ):
        assert session.objects.put("t/x.bin", data).etag.strip('"') == md5(data).hexdigest()
        session.commit("via the second replica")
    with tilde.Client(api_key=deployment.first.api_key, endpoint_url=first) as client:
        objects = next(iter(client.repository(repository).commits.list(amount=1))).objects
        with objects.get("t/x.bin") as reader:  # a redirect to SeaweedFS
            assert reader.read() == data
    # The bytes went between the client and SeaweedFS: neither replica's data plane served.
    logs = [
        path.read_text(errors="replace")
        for path in (deployment.first.log_path, deployment.second.log_path)
    ]
    assert all("/repositories/tilde/" in log for log in logs)  # the logs do record requests
    assert not any("/blobs/" in log for log in logs)


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(deployment: Deployment) -> None:
    org = f"/organizations/{deployment.first.org}"
    first, second = deployment.endpoints
    with deployment.client(first) as admin:
        name = f"bot-{uuid.uuid4().hex[:6]}"
        assert admin.post(f"{org}/agents", json={"name": name}).status_code == 201
        key = admin.post(f"{org}/agents/{name}/auth/keys", json={"name": "k"}).json()
        with deployment.client(second, key["token"]) as agent:
            assert agent.get("/organizations").status_code == 200
            revoked = admin.delete(f"{org}/agents/{name}/auth/keys/{key['id']}")
            assert revoked.status_code == 204
            assert agent.get("/organizations").status_code == 401


@needs_sandboxes
def test_a_sandbox_is_reached_through_either_replica(deployment: Deployment) -> None:
    repository = _repo(deployment, "sandboxes")
    org, key, (first, second) = deployment.first.org, deployment.first.api_key, deployment.endpoints
    with deployment.client(first) as api_first, deployment.client(second) as api_second:
        runs_on_first = Sandboxes(RepoHttp(api_first, repository), first, key)
        via_second = Sandboxes(RepoHttp(api_second, repository), second, key)
        sandbox_id = runs_on_first.running(command=["sh", "-c", "echo started; sleep 600"])

        def exec_entries() -> int:
            query = {"resource_id": sandbox_id, "action": "ExecSandbox"}
            log = api_first.get(f"/organizations/{org}/audit-log", params=query)
            assert log.status_code == 200, log.text
            return len(log.json()["items"])

        # The second replica forwards the exec websocket to the first, frame for frame both
        # ways, and the session is audited once.
        result = via_second.exec(sandbox_id, "cat; echo out; echo err >&2; exit 7", stdin=b"in ")
        assert (result.stdout, result.stderr, result.exit_code) == (b"in out\n", b"err\n", 7)
        assert exec_entries() == 1
        # A forged forwarding header is no forwarding: that session is audited as any other.
        with connect(
            f"{runs_on_first.ws_base}/{sandbox_id}/exec",
            additional_headers={"Authorization": f"Bearer {key}", FORWARDED: "forged"},
        ):
            pass
        assert exec_entries() == 2
        # The live log, followed through the second replica.
        with api_second.stream("GET", f"{via_second.base}/{sandbox_id}/logs/stdout") as log:
            assert log.status_code == 200
            assert next(log.iter_text()).startswith("started")
        # The owner's refusal comes back as it is (a terminal is for interactive sandboxes).
        status, body = handshake_status(f"{via_second.ws_base}/{sandbox_id}/terminal", key)
        assert (status, body["code"]) == (400, "wrong_mode")
        # Cancelling through the second replica ends it where it runs.
        cancelled = api_second.delete(f"{via_second.base}/{sandbox_id}")
        assert cancelled.status_code == 202, cancelled.text
        assert runs_on_first.wait(sandbox_id)["status"] == "cancelled"
        # Its finished log lives with the first replica; the second still serves it.
        assert "started" in via_second.logs(sandbox_id)


def test_a_replica_killed_mid_commit_loses_nothing_it_acknowledged(
    deployment: Deployment,
) -> None:
    repository = _repo(deployment, "killed")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def commit_forever(worker: int) -> None:
        with deployment.client(deployment.second.endpoint_url) as api:
            repo = RepoHttp(api, repository)
            count = 0
            while not stop.is_set():
                path = f"w{worker}/{count}"
                try:
                    session = repo.session()
                    repo.put(session, path, path.encode())
                    answer = api.post(f"{repo.base}/sessions/{session}", json={"message": path})
                except (httpx.HTTPError, AssertionError):
                    return
                if answer.status_code != 200:
                    return
                with lock:
                    acknowledged.append(path)
                count += 1

    workers = [threading.Thread(target=commit_forever, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    time.sleep(2.0)
    deployment.second.kill()
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert len(acknowledged) > 3, (
        "the replica committed too little before the kill to mean anything"
    )

    # The other replica serves on, and has every commit the killed one acknowledged.
    with deployment.client(deployment.first.endpoint_url) as api:
        repo = RepoHttp(api, repository)
        head = repo.tree()
        for path in acknowledged:
            assert path in head, path
            assert repo.read(path) == path.encode()
        session = repo.session()
        repo.put(session, "after-the-kill", b"still serving")
        repo.commit(session)
