"""Import jobs over the wire, from a real SeaweedFS and from other repositories: one commit
or nothing; a source that changes or disappears mid-import fails the job and leaves the
repository as it was; another repository's objects are imported without copying a byte;
importing again copies only what changed; a caller who may not read the source gets nothing;
a job whose server died is run again by the next one."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest

from lamina.testing import LocalServer
from tests.conftest import RepoHttp
from tests.server import s3_source
from tests.server.members import new_member
from tests.server.seaweedfs import SeaweedFS


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of this module's own: its imports put thousands of blobs in the store, which
    the session's server (whose data directory other tests scan) is spared."""
    with LocalServer(data_dir=tmp_path_factory.mktemp("imports-server")) as server:
        yield server


def _objects(count: int, size: int = 64, prefix: str = "data/") -> dict[str, bytes]:
    return {f"{prefix}{index:05d}.bin": os.urandom(size) for index in range(count)}


def _create_connector(
    api: httpx.Client, org: str, seaweedfs: SeaweedFS, source_uri: str, **config: Any
) -> httpx.Response:
    return api.post(
        f"/organizations/{org}/connectors",
        json={
            "name": "src",
            "type": "s3",
            "source_uri": source_uri,
            "config": s3_source.config(seaweedfs, **config),
        },
    )


def _connector(
    api: httpx.Client,
    org: str,
    seaweedfs: SeaweedFS,
    source_uri: str,
    repo: RepoHttp,
    **config: Any,
) -> str:
    created = _create_connector(api, org, seaweedfs, source_uri, **config)
    assert created.status_code == 201, created.text
    connector_id: str = created.json()["id"]
    attached = repo.api.post(f"{repo.base}/connectors", json={"connector_id": connector_id})
    assert attached.status_code == 201, attached.text
    return connector_id


def _start(repo: RepoHttp, **body: Any) -> str:
    started = repo.api.post(f"{repo.base}/import", json=body)
    assert started.status_code == 202, started.text
    job_id: str = started.json()["job_id"]
    return job_id


def _job(repo: RepoHttp, job_id: str) -> dict[str, Any]:
    response = repo.api.get(f"{repo.base}/import/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _wait(repo: RepoHttp, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(repo, job_id)
        if job["status"] not in ("pending", "running"):
            return job
        assert time.monotonic() < deadline, f"import still {job['status']}: {job}"
        time.sleep(0.05)


def _log(repo: RepoHttp) -> list[dict[str, Any]]:
    response = repo.api.get(f"{repo.base}/log", params={"amount": 100})
    assert response.status_code == 200, response.text
    commits: list[dict[str, Any]] = response.json()["results"]
    return commits


@pytest.fixture
def bucket(seaweedfs: SeaweedFS, unique_name: Callable[..., str]) -> str:
    name = unique_name("imp")
    s3_source.create_bucket(seaweedfs, name)
    return name


def _import_many(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo: RepoHttp,
    count: int,
) -> None:
    objects = _objects(count, size=16)
    s3_source.put_objects(seaweedfs, bucket, objects)
    connector = _connector(api, local_server.org, seaweedfs, f"s3://{bucket}/", repo)
    before = len(_log(repo))
    job = _wait(repo, _start(repo, connector_id=connector, destination_path="in"), timeout=600)
    assert job["status"] == "completed", job
    assert (job["objects_imported"], job["error"]) == (count, None)
    commits = _log(repo)
    assert len(commits) == before + 1  # one commit
    assert commits[0]["id"] == job["commit_id"]
    tree = repo.tree()
    assert len(tree) == count
    for path in ("data/00000.bin", f"data/{count - 1:05d}.bin"):
        assert repo.read(f"in/{path}") == objects[path]


def test_an_import_lands_as_one_commit(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    _import_many(api, local_server, seaweedfs, bucket, repo_http, 1000)


@pytest.mark.parametrize("etags", ["md5", "opaque"])
def test_every_imported_object_keeps_the_md5_of_its_bytes_as_its_etag(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
    etags: str,
) -> None:
    # A single-part object's ETag is its MD5 (taken as it is, with etags=md5); a multipart
    # one's is "<md5 of the part md5s>-<parts>", never taken for the bytes' MD5.
    single, multi = os.urandom(3000), os.urandom(6 * 1024 * 1024 + 5)
    target = s3_source.store(seaweedfs, bucket)
    obstore.put(target, "single.bin", single)
    obstore.put(target, "multi.bin", multi, use_multipart=True, chunk_size=5 * 1024 * 1024)
    source_etags = {m["path"]: str(m["e_tag"]).strip('"') for b in obstore.list(target) for m in b}
    assert source_etags["multi.bin"].endswith("-2")
    connector = _connector(
        api, local_server.org, seaweedfs, f"s3://{bucket}/", repo_http, etags=etags
    )
    job = _wait(repo_http, _start(repo_http, connector_id=connector, destination_path="in"))
    assert job["status"] == "completed", job
    assert repo_http.tree() == {
        "in/single.bin": hashlib.md5(single).hexdigest(),
        "in/multi.bin": hashlib.md5(multi).hexdigest(),
    }
    assert repo_http.read("in/multi.bin") == multi


def test_a_connector_with_unknown_etags_is_refused(
    api: httpx.Client, local_server: LocalServer, seaweedfs: SeaweedFS, bucket: str
) -> None:
    refused = _create_connector(api, local_server.org, seaweedfs, f"s3://{bucket}/", etags="sha1")
    assert refused.status_code == 400
    assert "etags must be md5 or opaque" in refused.json()["message"]


@pytest.mark.slow
def test_ten_thousand_objects_land_as_one_commit(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    _import_many(api, local_server, seaweedfs, bucket, repo_http, 10_000)


def test_job_fields_prefixes_and_a_rerun_copies_only_what_changed(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    objects = {
        **_objects(5, prefix="datasets/train/"),
        **_objects(2, prefix="datasets/test/"),
        "other/x.bin": b"x",
    }
    s3_source.put_objects(seaweedfs, bucket, objects)
    connector = _connector(api, local_server.org, seaweedfs, f"s3://{bucket}/datasets/", repo_http)
    # The tilde-sdk README passes the connector's prefix again: it means the same folder.
    body = {
        "connector_id": connector,
        "destination_path": "imported/",
        "source_prefix": "datasets/train",
        "commit_message": "Import training data",
    }
    job_id = _start(repo_http, **body)
    job = _wait(repo_http, job_id)
    assert set(job) >= {
        "id",
        "repository_id",
        "connector_id",
        "source_repository_id",
        "source_organization",
        "source_repository",
        "destination_path",
        "source_prefix",
        "commit_message",
        "status",
        "objects_imported",
        "commit_id",
        "error",
        "created_by_type",
        "created_by",
        "created_at",
        "updated_at",
    }
    assert (job["id"], job["status"], job["objects_imported"]) == (job_id, "completed", 5)
    assert (job["connector_id"], job["source_repository_id"]) == (connector, None)
    assert job["created_by_type"] == "user" and job["updated_at"] >= job["created_at"]
    assert sorted(repo_http.tree()) == [f"imported/{i:05d}.bin" for i in range(5)]
    assert _log(repo_http)[0]["message"] == "Import training data"
    head = job["commit_id"]

    again = _wait(repo_http, _start(repo_http, **body))
    assert (again["status"], again["objects_imported"], again["objects_unchanged"]) == (
        "completed",
        0,
        5,
    )
    assert again["commit_id"] is None and _log(repo_http)[0]["id"] == head

    s3_source.put_objects(seaweedfs, bucket, {"datasets/train/00001.bin": b"changed"})
    third = _wait(repo_http, _start(repo_http, **body))
    assert (third["objects_imported"], third["objects_unchanged"]) == (1, 4)
    assert repo_http.read("imported/00001.bin") == b"changed"
    assert len(_log(repo_http)) == 3  # created, first import, the change


def test_a_source_that_disappears_mid_import_leaves_the_repository_unchanged(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    objects = _objects(3000, size=32 * 1024)
    s3_source.put_objects(seaweedfs, bucket, objects)
    connector = _connector(api, local_server.org, seaweedfs, f"s3://{bucket}/", repo_http)
    head = _log(repo_http)[0]["id"]
    job_id = _start(repo_http, connector_id=connector, destination_path="in/")
    deadline = time.monotonic() + 60
    while _job(repo_http, job_id)["objects_imported"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # The source goes away under the running job: its last objects are deleted.
    s3_source.delete_objects(seaweedfs, bucket, sorted(objects)[-1000:])
    job = _wait(repo_http, job_id)
    assert (job["status"], job["error_code"], job["commit_id"]) == (
        "failed",
        "source_changed",
        None,
    )
    assert "disappeared" in job["error"] and "nothing was imported" in job["error"]
    assert job["objects_imported"] == 0
    assert _log(repo_http)[0]["id"] == head
    assert repo_http.tree() == {}


def _blob_count(server: LocalServer) -> int:
    return sum(1 for path in (server.data_dir / "blobs" / "objects").rglob("*") if path.is_file())


def test_an_import_from_another_repository_copies_no_bytes(
    api: httpx.Client,
    local_server: LocalServer,
    new_repo_http: Callable[[], RepoHttp],
) -> None:
    source, target = new_repo_http(), new_repo_http()
    session = source.session()
    contents = {f"raw/{i}.bin": os.urandom(2000) for i in range(20)}
    for path, data in contents.items():
        source.put(session, path, data)
    source.put(session, "elsewhere.bin", b"not imported")
    source.commit(session)
    blobs = _blob_count(local_server)
    org, name = source.repository.split("/")
    job = _wait(
        target,
        _start(
            target,
            source_organization=org,
            source_repository=name,
            source_prefix="raw/",
            destination_path="copy",
        ),
    )
    assert (job["status"], job["objects_imported"]) == ("completed", 20), job
    assert job["source_organization"] == org and job["source_repository"] == name
    assert job["source_commit_id"] == _log(source)[0]["id"]
    assert _blob_count(local_server) == blobs  # no byte copied
    assert sorted(target.tree()) == sorted(f"copy/{p.removeprefix('raw/')}" for p in contents)
    assert target.read("copy/3.bin") == contents["raw/3.bin"]
    rerun = _wait(
        target,
        _start(
            target,
            source_organization=org,
            source_repository=name,
            source_prefix="raw",
            destination_path="copy/",
        ),
    )
    assert (rerun["objects_imported"], rerun["objects_unchanged"]) == (0, 20)


def test_importing_from_a_repository_the_caller_cannot_read_is_refused(
    api: httpx.Client,
    local_server: LocalServer,
    unique_name: Callable[..., str],
) -> None:
    member = new_member(api, local_server, unique_name)
    o = member.o
    assert api.post(f"{o}/repositories", json={"name": "secret"}).status_code == 201
    secret = RepoHttp(api, f"{member.org}/secret")
    session = secret.session()
    secret.put(session, "plans.txt", b"classified")
    secret.commit(session)
    assert api.post(f"{o}/repositories", json={"name": "mixed"}).status_code == 201
    mixed = RepoHttp(api, f"{member.org}/mixed")
    session = mixed.session()
    mixed.put(session, "public/a.txt", b"open")
    mixed.put(session, "private/b.txt", b"closed")
    mixed.commit(session)
    policy = api.post(
        f"{o}/policies",
        json={
            "name": "importer",
            # A member has ReadWrite (it reads every repository); this one may not read
            # "secret", and may import into "data".
            "policy_text": f'ImportData(repository="{member.org}/data")\n'
            f'Deny ListObjects(repository="{member.org}/secret")\n'
            f'Deny GetObject(repository="{member.org}/secret")\n'
            f'Deny GetObject(repository="{member.org}/mixed", path="private/*")\n',
        },
    )
    assert policy.status_code == 201, policy.text
    attached = api.post(
        f"{o}/policies/{policy.json()['id']}/attachments",
        json={"principal_type": "user", "principal_id": member.user_id},
    )
    assert attached.status_code == 201, attached.text
    data = RepoHttp(member.client, f"{member.org}/data")
    with member.client:
        refused = member.client.post(
            f"{data.base}/import",
            json={
                "source_organization": member.org,
                "source_repository": "secret",
                "destination_path": "stolen/",
            },
        )
        assert refused.status_code == 403, refused.text
        assert "ListObjects" in refused.json()["message"]
        # Another organization's repository: not a member, so not even that it exists.
        hidden = member.client.post(
            f"{data.base}/import",
            json={
                "source_organization": local_server.org,
                "source_repository": "anything",
                "destination_path": "stolen/",
            },
        )
        assert hidden.status_code == 404, hidden.text
        # Allowed to start (it may read some of "mixed"), but one object it imports is
        # denied to it: the job fails whole.
        job_id = _start(
            data, source_organization=member.org, source_repository="mixed", destination_path=""
        )
        job = _wait(data, job_id)
        assert (job["status"], job["error_code"]) == ("failed", "forbidden"), job
        assert "private/b.txt" in job["error"] and "public/a.txt" not in job["error"]
    assert member.repo.tree() == {}
    assert len(_log(member.repo)) == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"destination_path": "x/"}, "exactly one of"),
        (
            {
                "connector_id": "c",
                "source_organization": "o",
                "source_repository": "r",
                "destination_path": "",
            },
            "exactly one of",
        ),
        ({"source_organization": "o", "destination_path": "x"}, "go together"),
        ({"connector_id": "c"}, "destination_path"),
    ],
)
def test_bad_import_requests_are_400s(repo_http: RepoHttp, body: dict[str, Any], says: str) -> None:
    response = repo_http.api.post(f"{repo_http.base}/import", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["message"]


def test_unknown_jobs_are_404(repo_http: RepoHttp) -> None:
    response = repo_http.api.get(f"{repo_http.base}/import/00000000-0000-0000-0000-000000000000")
    assert (response.status_code, response.json()["code"]) == (404, "import_not_found")


# --- a server that dies mid-import ------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    server = LocalServer(data_dir=tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_job_whose_server_died_is_run_again_by_the_next(
    own_server: LocalServer, seaweedfs: SeaweedFS, bucket: str
) -> None:
    objects = _objects(2000, size=16 * 1024)
    s3_source.put_objects(seaweedfs, bucket, objects)

    def client() -> httpx.Client:
        return httpx.Client(
            base_url=f"{own_server.endpoint_url}/api/v1",
            headers={"Authorization": f"Bearer {own_server.api_key}"},
            timeout=60.0,
        )

    with client() as api:
        assert (
            api.post(
                f"/organizations/{own_server.org}/repositories", json={"name": "restarted"}
            ).status_code
            == 201
        )
        repo = RepoHttp(api, f"{own_server.org}/restarted")
        connector = _connector(api, own_server.org, seaweedfs, f"s3://{bucket}/", repo)
        job_id = _start(repo, connector_id=connector, destination_path="in/")
        deadline = time.monotonic() + 60
        while _job(repo, job_id)["objects_imported"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        own_server.kill()
    own_server.start()
    with client() as api:
        repo = RepoHttp(api, f"{own_server.org}/restarted")
        job = _wait(repo, job_id)
        assert (job["status"], job["objects_imported"]) == ("completed", 2000), job
        commits = _log(repo)
        assert len(commits) == 2 and commits[0]["id"] == job["commit_id"]
        assert len(repo.tree()) == 2000
