"""Connectors over the wire, against a real SeaweedFS: create (s3 by source_uri, or the
cerebral-sdk's config without one; other types refused), list, get, a real connection test
before and after creating (ok, and 502 naming the cause), disable (423), delete (410),
attachment to repositories; credentials sealed at rest and never returned; who may do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer
from tests.conftest import RepoHttp
from tests.server import s3_source
from tests.server.members import new_member
from tests.server.seaweedfs import SECRET_KEY, SeaweedFS


@pytest.fixture
def bucket(seaweedfs: SeaweedFS, unique_name: Callable[..., str]) -> str:
    name = unique_name("src")
    s3_source.create_bucket(seaweedfs, name)
    s3_source.put_objects(seaweedfs, name, {"data/a.csv": b"a,b\n1,2\n"})
    return name


def _o(server: LocalServer) -> str:
    return f"/organizations/{server.org}"


def _create(api: httpx.Client, server: LocalServer, **body: Any) -> httpx.Response:
    return api.post(f"{_o(server)}/connectors", json=body)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code", "request_id"} and body["code"] == code
    message: str = body["message"]
    return message


def test_create_list_get_never_return_credentials(
    api: httpx.Client, local_server: LocalServer, seaweedfs: SeaweedFS, bucket: str
) -> None:
    created = _create(
        api,
        local_server,
        name="prod",
        type="s3",
        source_uri=f"s3://{bucket}/data",
        config=s3_source.config(seaweedfs),
    )
    assert created.status_code == 201, created.text
    info = created.json()
    assert set(info) == {
        "id",
        "name",
        "type",
        "source_uri",
        "display_source",
        "disabled",
        "public_key",
        "created_at",
    }
    assert info["source_uri"] == f"s3://{bucket}/data/" and info["disabled"] is False
    assert info["public_key"] is None and info["created_at"].endswith("Z")
    listed = api.get(f"{_o(local_server)}/connectors")
    assert info["id"] in [c["id"] for c in listed.json()["results"]]
    got = api.get(f"{_o(local_server)}/connectors/{info['id']}")
    assert got.json() == info
    for response in (created, listed, got):
        assert SECRET_KEY not in response.text
    # Sealed at rest: the secret is nowhere in the data directory in plain text.
    # (Not the blob store: object bytes, whose small blobs are names of shared pack files.)
    for path in local_server.data_dir.rglob("*"):
        if path.is_file() and "blobs" not in path.relative_to(local_server.data_dir).parts:
            assert SECRET_KEY.encode() not in path.read_bytes(), path


def test_cerebral_config_without_source_uri(
    api: httpx.Client, local_server: LocalServer, seaweedfs: SeaweedFS, bucket: str
) -> None:
    created = _create(
        api,
        local_server,
        name="c",
        type="s3",
        config=s3_source.config(seaweedfs, bucket=bucket, prefix="data/"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["source_uri"] == f"s3://{bucket}/data/"
    tested = api.post(f"{_o(local_server)}/connectors/{created.json()['id']}/test")
    assert (tested.status_code, tested.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("kind", ["gcs", "git", "google_drive"])
def test_types_the_server_cannot_serve_are_refused(
    api: httpx.Client, local_server: LocalServer, kind: str
) -> None:
    refused = _create(api, local_server, name="x", type=kind, source_uri="gs://b/p", config={})
    assert "not supported by this server" in _error(refused, 400, "invalid_connector")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"source_uri": "http://bucket/x"}, "source_uri must be s3://"),
        ({"source_uri": "s3://B_ad/x"}, "not a valid S3 bucket name"),
        ({"config": {"access_key_id": "only"}}, "both access_key_id and secret_access_key"),
        ({"config": {"colour": "red"}}, "unknown key 'colour'"),
        ({"config": {"endpoint": "ftp://x"}}, "config.endpoint"),
        ({"source_uri": None}, "source_uri is required"),
    ],
)
def test_bad_configs_are_400s_naming_the_problem(
    api: httpx.Client, local_server: LocalServer, body: dict[str, Any], says: str
) -> None:
    request = {"name": "x", "type": "s3", "source_uri": "s3://bucket/x", "config": {}, **body}
    assert says in _error(_create(api, local_server, **request), 400, "invalid_connector")


def test_connection_tests_are_real(
    api: httpx.Client, local_server: LocalServer, seaweedfs: SeaweedFS, bucket: str
) -> None:
    o = _o(local_server)
    good = {"type": "s3", "source_uri": f"s3://{bucket}/", "config": s3_source.config(seaweedfs)}
    assert api.post(f"{o}/connectors:test", json=good).json() == {"status": "ok"}

    wrong_secret = {**good, "config": s3_source.config(seaweedfs, secret_access_key="nope")}
    message = _error(api.post(f"{o}/connectors:test", json=wrong_secret), 502, "connection_failed")
    assert bucket in message and "nope" not in message

    closed_port = {**good, "config": s3_source.config(seaweedfs, endpoint="http://127.0.0.1:9")}
    message = _error(api.post(f"{o}/connectors:test", json=closed_port), 502, "connection_failed")
    assert "127.0.0.1:9" in message

    missing = {**good, "source_uri": "s3://no-such-bucket-here/"}
    _error(api.post(f"{o}/connectors:test", json=missing), 502, "connection_failed")

    created = _create(api, local_server, name="broken", **wrong_secret).json()
    _error(api.post(f"{o}/connectors/{created['id']}/test"), 502, "connection_failed")


def test_disable_is_423_and_delete_is_410(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    o = _o(local_server)
    conn = _create(
        api,
        local_server,
        name="d",
        type="s3",
        source_uri=f"s3://{bucket}/",
        config=s3_source.config(seaweedfs),
    ).json()
    one = f"{o}/connectors/{conn['id']}"
    attached = api.post(f"{repo_http.base}/connectors", json={"connector_id": conn["id"]})
    assert attached.status_code == 201, attached.text
    listed = api.get(f"{repo_http.base}/connectors").json()["results"]
    assert [c["id"] for c in listed] == [conn["id"]]

    disabled = api.patch(one, json={"disabled": True})
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    _error(api.post(f"{one}/test"), 423, "connector_disabled")
    start = {"connector_id": conn["id"], "destination_path": "in/"}
    _error(api.post(f"{repo_http.base}/import", json=start), 423, "connector_disabled")
    assert api.patch(one, json={"disabled": False}).json()["disabled"] is False
    assert api.post(f"{one}/test").status_code == 200

    assert api.delete(one).status_code == 204
    _error(api.get(one), 410, "connector_deleted")
    _error(api.post(f"{one}/test"), 410, "connector_deleted")
    _error(api.delete(one), 410, "connector_deleted")
    _error(api.post(f"{repo_http.base}/import", json=start), 410, "connector_deleted")
    assert conn["id"] not in [c["id"] for c in api.get(f"{o}/connectors").json()["results"]]
    assert api.get(f"{repo_http.base}/connectors").json() == {"results": []}
    _error(api.get(f"{o}/connectors/{conn['id']}x"), 404, "connector_not_found")

    # The changes are in the audit log, as every route that changes state.
    def audited(**filters: str) -> set[tuple[str, str]]:
        response = api.get(f"{o}/audit-log", params={"action": "ManageConnectors", **filters})
        assert response.status_code == 200, response.text
        return {(e["action"], e["resource_kind"]) for e in response.json()["items"]}

    assert audited(resource_id=conn["id"]) == {("ManageConnectors", "connector")}
    repository = repo_http.repository.split("/")[1]
    assert ("ManageConnectors", "repository") in audited(resource_id=repository)


def test_attach_detach(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    repo_http: RepoHttp,
) -> None:
    conn = _create(
        api,
        local_server,
        name="a",
        type="s3",
        source_uri=f"s3://{bucket}/",
        config=s3_source.config(seaweedfs),
    ).json()
    base = f"{repo_http.base}/connectors"
    _error(api.post(base, json={"connector_id": "nope"}), 404, "connector_not_found")
    start = {"connector_id": conn["id"], "destination_path": "in/"}
    _error(api.post(f"{repo_http.base}/import", json=start), 404, "connector_not_attached")
    assert api.post(base, json={"connector_id": conn["id"]}).status_code == 201
    assert api.post(base, json={"connector_id": conn["id"]}).status_code == 201  # idempotent
    assert len(api.get(base).json()["results"]) == 1
    assert api.delete(f"{base}/{conn['id']}").status_code == 204
    _error(api.delete(f"{base}/{conn['id']}"), 404, "connector_not_attached")
    assert api.get(base).json() == {"results": []}


def test_a_plain_member_cannot_manage_connectors_and_outsiders_learn_nothing(
    api: httpx.Client,
    local_server: LocalServer,
    seaweedfs: SeaweedFS,
    bucket: str,
    unique_name: Callable[..., str],
) -> None:
    member = new_member(api, local_server, unique_name)
    body = {"name": "m", "type": "s3", "source_uri": f"s3://{bucket}/", "config": {}}
    with member.client:
        refused = member.client.post(f"{member.o}/connectors", json=body)
        assert "ManageConnectors" in _error(refused, 403, "forbidden")
        _error(member.client.get(f"{member.o}/connectors"), 403, "forbidden")
        # The bootstrap organization's connectors: not a member, so not even its name.
        _error(member.client.get(f"{_o(local_server)}/connectors"), 404, "organization_not_found")
