"""The upload extensions over real HTTP: one-request puts (``POST .../object/upload``) and
batched tar uploads (``POST .../objects/upload``) stage exactly what the contract's three
requests stage, and refuse every bad input with the status and code finalize answers; a batch
stages all or nothing; the capabilities document lists them only where the server offers them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer
from tests.server.members import Member, new_member
from tests.server.test_uploads import (
    changes,
    error,
    finalize,
    md5,
    r,
    read,
    send,
    session,
    start,
)

ATTRIBUTES = "X-Lamina-Attributes"
# Offered only where the API process holds the bytes: not on S3 (see the capabilities test).
local_only = pytest.mark.local_blobs_only("the upload extensions are not offered on S3")


def put_one(
    api: httpx.Client, repo: str, sid: str, path: str, data: bytes, **attributes: Any
) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream"}
    if attributes:
        headers[ATTRIBUTES] = json.dumps(attributes)
    return api.post(
        f"{r(repo)}/object/upload",
        params={"session_id": sid, "path": path},
        content=data,
        headers=headers,
    )


def archive(*members: tuple[str, bytes, dict[str, Any] | None]) -> bytes:
    """A pax tar archive (the standard library's writer) of ``(path, data, attributes)``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, attributes in members:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            records = {"path": path}  # kept whole, NUL and all
            if attributes is not None:
                records["LAMINA.attributes"] = json.dumps(attributes)
            info.pax_headers = records
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def put_batch(
    client: httpx.Client, repo: str, sid: str, *members: tuple[str, bytes, dict[str, Any] | None]
) -> httpx.Response:
    return client.post(
        f"{r(repo)}/objects/upload",
        params={"session_id": sid},
        content=archive(*members),
        headers={"Content-Type": "application/x-tar"},
    )


def batch_failures(response: httpx.Response, status: int) -> dict[str, tuple[int, str]]:
    """The objects a refused batch names: path -> (status, code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "batch_failed" and body["request_id"], body
    assert "nothing staged" in body["message"]
    return {item["path"]: (item["status"], item["code"]) for item in body["failed"]}


def three_requests(
    api: httpx.Client, repo: str, sid: str, path: str, data: bytes, **attributes: Any
) -> httpx.Response:
    target = start(api, repo, sid, path)
    assert send(target["upload_url"], data).status_code == 200
    return finalize(api, repo, sid, path, upload_token=target["upload_token"], **attributes)


def head(api: httpx.Client, repo: str, sid: str, path: str) -> dict[str, str]:
    response = api.head(f"{r(repo)}/object", params={"path": path, "session_id": sid})
    assert response.status_code == 200, response.text
    return {
        name: value
        for name, value in response.headers.items()
        if name in ("etag", "content-type", "content-length") or name.startswith("x-tilde-meta-")
    }


def staged(api: httpx.Client, repo: str, sid: str) -> dict[str, dict[str, Any]]:
    """path -> the staged entry, without its time."""
    found = {}
    for change in changes(api, repo, sid):
        entry = dict(change["entry"])
        del entry["last_modified"]
        found[change["path"]] = entry
    return found


CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("empty", b"", {}),
    ("small.bin", os.urandom(5000), {"checksum": "", "size_bytes": 5000}),
    (
        "doc.json",
        b'{"a": 1}',
        {"content_type": "application/json", "metadata": {"Owner": "ada", "note": "ünïcode"}},
    ),
    ("pack-sized", os.urandom(64 * 1024 + 1), {"content_type": "image/png"}),
    ("limit.bin", os.urandom(1024 * 1024), {"metadata": {"k": "v"}}),
]


def _with_checksum(data: bytes, attributes: dict[str, Any]) -> dict[str, Any]:
    if attributes.get("checksum") == "":
        return {**attributes, "checksum": f'"{md5(data).upper()}"'}
    return attributes


@local_only
def test_the_extensions_stage_what_the_three_requests_stage(
    api: httpx.Client, repository: str
) -> None:
    sid = session(api, repository)
    for name, data, attributes in CASES:
        attributes = _with_checksum(data, attributes)
        contract = three_requests(api, repository, sid, f"contract/{name}", data, **attributes)
        one = put_one(api, repository, sid, f"one/{name}", data, **attributes)
        assert contract.status_code == one.status_code == 201, one.text
        assert one.json() == {"path": f"one/{name}", "etag": md5(data)}
    batched = put_batch(
        api,
        repository,
        sid,
        *((f"batch/{name}", data, _with_checksum(data, attrs)) for name, data, attrs in CASES),
    )
    assert batched.status_code == 201, batched.text
    assert batched.json() == {
        "objects": [{"path": f"batch/{name}", "etag": md5(data)} for name, data, _ in CASES]
    }
    entries = staged(api, repository, sid)
    assert len(entries) == 3 * len(CASES)
    for name, data, _ in CASES:
        expected = entries[f"contract/{name}"]
        assert expected["e_tag"] == md5(data) and expected["size"] == len(data)
        assert entries[f"one/{name}"] == entries[f"batch/{name}"] == expected
        heads = [head(api, repository, sid, f"{kind}/{name}") for kind in ("contract", "one")]
        assert heads[0] == heads[1] == head(api, repository, sid, f"batch/{name}")
        for kind in ("one", "batch"):
            assert read(api, repository, f"{kind}/{name}", session_id=sid) == data
    assert entries["one/doc.json"]["metadata"] == {"Owner": "ada", "note": "ünïcode"}


BAD_ATTRIBUTES: list[dict[str, Any]] = [
    {"checksum": "0" * 32},
    {"size_bytes": 3},
    {"checksum": "xyz"},
    {"size_bytes": -1},
    {"size_bytes": "4"},
    {"metadata": {"bad key": "v"}},
    {"metadata": {"k": "a\r\nb"}},
    {"metadata": ["not", "an", "object"]},
    {"content_type": "a\nb"},
]


@local_only
@pytest.mark.parametrize("attributes", BAD_ATTRIBUTES, ids=lambda a: json.dumps(a))
def test_bad_attributes_are_refused_as_finalize_refuses_them(
    api: httpx.Client, repository: str, attributes: dict[str, Any]
) -> None:
    sid = session(api, repository)
    contract = three_requests(api, repository, sid, "x.bin", b"four", **attributes)
    expected = error(contract, contract.status_code)
    assert 400 <= contract.status_code < 500
    one = put_one(api, repository, sid, "x.bin", b"four", **attributes)
    assert error(one, contract.status_code)["code"] == expected["code"]
    batched = put_batch(
        api, repository, sid, ("ok.bin", b"fine", None), ("x.bin", b"four", attributes)
    )
    assert batch_failures(batched, contract.status_code) == {
        "x.bin": (contract.status_code, expected["code"])
    }
    assert changes(api, repository, sid) == []


@local_only
def test_an_attributes_header_that_is_not_json(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    for raw in ("not json", "[1]", '{"checksum": 5}'):
        response = api.post(
            f"{r(repository)}/object/upload",
            params={"session_id": sid, "path": "a"},
            content=b"x",
            headers={ATTRIBUTES: raw},
        )
        assert error(response, 400)["code"] == "bad_request"
    assert changes(api, repository, sid) == []


@local_only
@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "must not be empty"),
        ("/lead", "must not start with '/'"),
        ("a/../b", "'..'"),
        ("nul\x00byte", "NUL"),
        ("x" * 1025, "limit is 1024"),
    ],
)
def test_bad_paths_are_refused(api: httpx.Client, repository: str, path: str, problem: str) -> None:
    sid = session(api, repository)
    response = put_one(api, repository, sid, path, b"x")
    assert error(response, 400, contains=problem)["code"] == "invalid_path"
    batched = put_batch(api, repository, sid, ("ok", b"x", None), (path, b"x", None))
    assert batch_failures(batched, 400) == {path: (400, "invalid_path")}
    assert problem.lower() in batched.json()["failed"][0]["message"].lower()
    assert changes(api, repository, sid) == []


@local_only
def test_objects_over_the_limit(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    big = os.urandom(1024 * 1024 + 1)
    assert error(put_one(api, repository, sid, "big", big), 413)["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused as it streams past the limit
        yield big[:100]
        yield big[100:]

    response = api.post(
        f"{r(repository)}/object/upload",
        params={"session_id": sid, "path": "big"},
        content=chunked(),
    )
    assert error(response, 413)["code"] == "request_too_large"
    batched = put_batch(api, repository, sid, ("big", big, None), ("ok", b"x", None))
    assert batch_failures(batched, 413) == {"big": (413, "request_too_large")}
    assert changes(api, repository, sid) == []


@local_only
def test_sessions_must_be_open_and_of_this_repository(
    api: httpx.Client, repository: str, new_repo_http: Callable[[], Any]
) -> None:
    unknown = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    foreign = new_repo_http().session()
    committed = session(api, repository)
    assert api.post(f"{r(repository)}/sessions/{committed}", json={"message": "m"}).is_success
    rolled_back = session(api, repository)
    assert api.delete(f"{r(repository)}/sessions/{rolled_back}").status_code == 204
    for sid, status, code in (
        (unknown, 404, "session_not_found"),
        (foreign, 404, "session_not_found"),
        (committed, 400, "session_closed"),
        (rolled_back, 400, "session_closed"),
    ):
        contract = api.put(f"{r(repository)}/object", params={"session_id": sid, "path": "a"})
        assert error(contract, status)["code"] == code
        assert error(put_one(api, repository, sid, "a", b"x"), status)["code"] == code
        batched = put_batch(api, repository, sid, ("a", b"x", None))
        assert error(batched, status)["code"] == code
    missing = api.post(f"{r(repository)}/objects/upload", content=archive(("a", b"x", None)))
    assert error(missing, 400, contains="session_id")["code"] == "bad_request"


@local_only
def test_a_batch_that_is_not_a_tar_archive_stages_nothing(
    api: httpx.Client, repository: str
) -> None:
    sid = session(api, repository)
    whole = archive(("a", b"first", None), ("b", b"B" * 3000, None))
    inside_b = whole.index(b"B" * 3000) + 1000
    for body in (b"not a tar archive" * 40, whole[:1500], whole[:inside_b]):
        response = api.post(
            f"{r(repository)}/objects/upload", params={"session_id": sid}, content=body
        )
        assert error(response, 400)["code"] == "invalid_archive"
    assert changes(api, repository, sid) == []
    # What tar writes besides regular files (a folder) is skipped; an empty archive stages nothing.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        folder = tarfile.TarInfo("dir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        info = tarfile.TarInfo("dir/file")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    response = api.post(
        f"{r(repository)}/objects/upload", params={"session_id": sid}, content=buffer.getvalue()
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"objects": [{"path": "dir/file", "etag": md5(b"hi")}]}
    empty = api.post(f"{r(repository)}/objects/upload", params={"session_id": sid}, content=b"")
    assert empty.status_code == 201 and empty.json() == {"objects": []}
    assert list(staged(api, repository, sid)) == ["dir/file"]


@local_only
def test_a_path_given_twice_in_a_batch_keeps_the_later(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    response = put_batch(api, repository, sid, ("p", b"first", None), ("p", b"second", None))
    assert response.status_code == 201, response.text
    assert read(api, repository, "p", session_id=sid) == b"second"


def test_the_capabilities_document(
    api: httpx.Client, repository: str, local_server: LocalServer
) -> None:
    with httpx.Client(base_url=f"{local_server.endpoint_url}/api/v1") as anonymous:
        response = anonymous.get("/capabilities")
    assert response.status_code == 200, response.text
    if "--blob-store" in local_server.server_args:
        # On S3 the API process moves no object bytes: no extension, and both routes refuse.
        assert response.json() == {"extensions": {}}
        sid = session(api, repository)
        assert error(put_one(api, repository, sid, "a", b"x"), 501)["code"] == "not_supported"
        batched = put_batch(api, repository, sid, ("a", b"x", None))
        assert error(batched, 501, contains="reached directly")["code"] == "not_supported"
        assert changes(api, repository, sid) == []
        return
    assert response.json() == {
        "extensions": {
            "one_request_put": {"max_object_bytes": 1024 * 1024},
            "batch_upload": {
                "max_object_bytes": 1024 * 1024,
                "max_objects": 10000,
                "format": "application/x-tar",
            },
        }
    }


def test_a_server_with_the_extensions_turned_off(tmp_path: Path) -> None:
    with LocalServer(data_dir=tmp_path, server_args=["--no-upload-extensions"]) as server:
        api = httpx.Client(
            base_url=f"{server.endpoint_url}/api/v1",
            headers={"Authorization": f"Bearer {server.api_key}"},
        )
        with api:
            assert api.get("/capabilities").json() == {"extensions": {}}
            created = api.post(f"/organizations/{server.org}/repositories", json={"name": "data"})
            assert created.status_code == 201, created.text
            repo = f"{server.org}/data"
            sid = session(api, repo)
            assert error(put_one(api, repo, sid, "a", b"x"), 501)["code"] == "not_supported"
            batched = put_batch(api, repo, sid, ("a", b"x", None))
            assert error(batched, 501)["code"] == "not_supported"
            assert changes(api, repo, sid) == []


# --- authorization ----------------------------------------------------------------------------


def _policy_only(api: httpx.Client, member: Member, text: str) -> None:
    """The member holds exactly this policy (the default ReadWrite detached)."""
    listed = api.get(f"{member.o}/policies").json()["results"]
    read_write = next(p["id"] for p in listed if p["name"] == "ReadWrite")
    detached = api.delete(
        f"{member.o}/policies/{read_write}/attachments",
        params={"principal_type": "user", "principal_id": member.user_id},
    )
    assert detached.status_code == 204, detached.text
    created = api.post(f"{member.o}/policies", json={"name": "only", "policy_text": text})
    assert created.status_code == 201, created.text
    attached = api.post(
        f"{member.o}/policies/{created.json()['id']}/attachments",
        json={"principal_type": "user", "principal_id": member.user_id},
    )
    assert attached.status_code == 201, attached.text


@local_only
def test_a_read_only_key_writes_nothing(api: httpx.Client, member: Member) -> None:
    _policy_only(api, member, "ListRepositories()\nGetRepository()\nListObjects()\nGetObject()\n")
    repo, sid = member.repo.repository, member.repo.session()
    response = put_one(member.client, repo, sid, "a", b"x")
    assert error(response, 403, contains="PutObject")["code"] == "forbidden"
    batched = put_batch(member.client, repo, sid, ("a", b"x", None), ("b", b"y", None))
    assert batch_failures(batched, 403) == {"a": (403, "forbidden"), "b": (403, "forbidden")}
    assert changes(api, repo, sid) == []


@local_only
def test_path_scoped_rights_are_judged_per_object(api: httpx.Client, member: Member) -> None:
    _policy_only(api, member, 'CreateSession()\nListObjects()\nPutObject(path="public/*")\n')
    repo, sid = member.repo.repository, member.repo.session()
    assert put_one(member.client, repo, sid, "public/a", b"x").status_code == 201
    error(put_one(member.client, repo, sid, "private/a", b"x"), 403, contains="PutObject")
    batched = put_batch(
        member.client, repo, sid, ("public/b", b"x", None), ("private/b", b"y", None)
    )
    assert batch_failures(batched, 403) == {"private/b": (403, "forbidden")}
    allowed = put_batch(member.client, repo, sid, ("public/b", b"x", None))
    assert allowed.status_code == 201, allowed.text
    assert sorted(staged(api, repo, sid)) == ["public/a", "public/b"]


@local_only
def test_a_deny_refuses_its_objects_of_a_batch_with_its_own_reason(
    api: httpx.Client, member: Member
) -> None:
    """A batch's objects are judged one by one against the member's cached policies: a
    prefix ``Deny`` and an exact-path one refuse the objects they match, each naming itself,
    and the objects next to them (a longer path, a shared start) are allowed."""
    _policy_only(
        api,
        member,
        "CreateSession()\nListObjects()\nPutObject()\n"
        'Deny PutObject(path="private/*")\nDeny PutObject(path="locked.txt")\n',
    )
    repo, sid = member.repo.repository, member.repo.session()
    refused = put_batch(
        member.client,
        repo,
        sid,
        ("public/a", b"x", None),
        ("private/a", b"y", None),
        ("locked.txt", b"z", None),
    )
    assert batch_failures(refused, 403) == {
        "private/a": (403, "forbidden"),
        "locked.txt": (403, "forbidden"),
    }
    reasons = {item["path"]: item["message"] for item in refused.json()["failed"]}
    assert 'line 4: Deny PutObject(path="private/*")' in reasons["private/a"]
    assert 'line 5: Deny PutObject(path="locked.txt")' in reasons["locked.txt"]
    allowed = put_batch(
        member.client,
        repo,
        sid,
        ("public/a", b"x", None),
        ("privately", b"y", None),
        ("locked.txt.bak", b"z", None),
    )
    assert allowed.status_code == 201, allowed.text
    assert sorted(staged(api, repo, sid)) == ["locked.txt.bak", "privately", "public/a"]


@local_only
def test_another_organization_learns_nothing(
    api: httpx.Client, local_server: LocalServer, member: Member, unique_name: Callable[..., str]
) -> None:
    other = new_member(api, local_server, unique_name)
    try:
        repo, sid = member.repo.repository, member.repo.session()
        response = put_one(other.client, repo, sid, "a", b"x")
        assert error(response, 404)["code"] == "organization_not_found"
        batched = put_batch(other.client, repo, sid, ("a", b"x", None))
        assert error(batched, 404)["code"] == "organization_not_found"
        # Not even whether the session is open.
        assert api.delete(f"{r(repo)}/sessions/{sid}").status_code == 204
        closed = put_batch(other.client, repo, sid, ("a", b"x", None))
        assert error(closed, 404)["code"] == "organization_not_found"
        assert changes(api, repo, member.repo.session()) == []
    finally:
        other.client.close()


def test_no_key_no_upload(repository: str, local_server: LocalServer) -> None:
    with httpx.Client(base_url=f"{local_server.endpoint_url}/api/v1") as anonymous:
        error(put_one(anonymous, repository, "s", "a", b"x"), 401)
        error(put_batch(anonymous, repository, "s", ("a", b"x", None)), 401)


# --- a batch cut short ------------------------------------------------------------------------


@local_only
def test_a_batch_killed_mid_stream_stages_nothing(tmp_path: Path) -> None:
    """SIGKILL while a batch streams in, half of it read and stored: after the restart the
    session holds what it held before, and nothing of the batch."""
    members = [(f"batch/{i:03d}", os.urandom(16_000 + i), None) for i in range(60)]
    members[3:3] = [(f"batch/large-{i}", os.urandom(300_000 + i), None) for i in range(4)]
    body = archive(*members)
    arrived, stop = threading.Event(), threading.Event()

    def halfway() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        arrived.set()
        stop.wait(30)  # the rest never comes: the server is killed meanwhile

    with LocalServer(data_dir=tmp_path / "data") as server:
        api = httpx.Client(
            base_url=f"{server.endpoint_url}/api/v1",
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=30.0,
        )
        with api:
            created = api.post(f"/organizations/{server.org}/repositories", json={"name": "data"})
            assert created.status_code == 201, created.text
            repo = f"{server.org}/data"
            sid = session(api, repo)
            before = put_one(api, repo, sid, "before", b"staged before the batch")
            assert before.status_code == 201, before.text

            def send_batch() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    api.post(
                        f"{r(repo)}/objects/upload", params={"session_id": sid}, content=halfway()
                    )

            sender = threading.Thread(target=send_batch, daemon=True)
            sender.start()
            assert arrived.wait(30)
            time.sleep(0.5)  # the server reads and stores what arrived
            server.kill()
            stop.set()
            sender.join(30)
            # It was cut mid-batch: the larger objects read so far were stored, as files.
            assert len(os.listdir(server.data_dir / "blobs" / "incoming")) >= 2

            server.start()
            api.headers["Authorization"] = f"Bearer {server.api_key}"
            assert list(staged(api, repo, sid)) == ["before"]
            # The session is still open, and a whole batch stages.
            again = put_batch(api, repo, sid, *members[:3])
            assert again.status_code == 201, again.text
            assert sorted(staged(api, repo, sid)) == [
                "batch/000",
                "batch/001",
                "batch/002",
                "before",
            ]


@local_only
def test_both_are_audited(api: httpx.Client, member: Member) -> None:
    repo, sid = member.repo.repository, member.repo.session()
    assert put_one(api, repo, sid, "one", b"x").status_code == 201
    assert put_batch(api, repo, sid, ("a", b"x", None), ("b", b"y", None)).status_code == 201
    response = api.get(f"{member.o}/audit-log", params={"action": "PutObject"})
    assert response.status_code == 200, response.text
    entries = [(e["resource_kind"], e["resource_id"]) for e in response.json()["items"]]
    # One entry per request, written with what it staged: the object, or the repository
    # with the paths of the objects the batch staged.
    assert sorted(entries) == sorted([("object", "one"), ("repository", "data")]), entries
    (batch,) = [e for e in response.json()["items"] if e["resource_kind"] == "repository"]
    assert batch["details"]["paths"] == ["a", "b"]
