"""Single and multipart uploads over real HTTP: the happy paths and every bad input.

A bad finalize or complete must answer a 4xx envelope and stage nothing, which each test checks
through ``/changes``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.api.signing import UrlSigner


def error(response: httpx.Response, status: int, *, contains: str = "") -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert contains.lower() in body["message"].lower(), body
    return body


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def session(api: httpx.Client, repo: str) -> str:
    response = api.post(f"{r(repo)}/sessions")
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def r(repo: str) -> str:
    org, name = repo.split("/")
    return f"/organizations/{org}/repositories/{name}"


def start(api: httpx.Client, repo: str, sid: str, path: str) -> dict[str, str]:
    response = api.put(f"{r(repo)}/object", params={"session_id": sid, "path": path})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def send(url: str, data: bytes) -> httpx.Response:
    """The presigned PUT, as SDKs send it: no Authorization header."""
    return httpx.put(url, content=data, headers={"Content-Type": "application/octet-stream"})


def finalize(api: httpx.Client, repo: str, sid: str, path: str, **body: Any) -> httpx.Response:
    return api.post(
        f"{r(repo)}/object/finalize", params={"session_id": sid, "path": path}, json=body
    )


def upload(api: httpx.Client, repo: str, sid: str, path: str, data: bytes) -> dict[str, str]:
    target = start(api, repo, sid, path)
    assert send(target["upload_url"], data).status_code == 200
    response = finalize(api, repo, sid, path, upload_token=target["upload_token"])
    assert response.status_code == 201, response.text
    result: dict[str, str] = response.json()
    return result


def changes(api: httpx.Client, repo: str, sid: str) -> list[dict[str, Any]]:
    response = api.get(f"{r(repo)}/changes", params={"session_id": sid})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def read(api: httpx.Client, repo: str, path: str, **params: str) -> bytes:
    response = api.get(f"{r(repo)}/object", params={"path": path, **params}, follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def signer(server: LocalServer) -> UrlSigner:
    """The server's own signer, from its key file: to mint validly signed, expired tokens."""
    return UrlSigner((server.data_dir / "signing.key").read_bytes())


def token_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[0]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def url_token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


# --- single uploads -------------------------------------------------------------------------


@pytest.mark.local_blobs_only("the upload URL is the local data plane's")
def test_single_upload_round_trip(
    api: httpx.Client, repository: str, local_server: LocalServer
) -> None:
    sid = session(api, repository)
    data = os.urandom(5000)
    target = start(api, repository, sid, "dir/file.bin")
    assert set(target) == {"upload_url", "upload_token"}
    assert target["upload_url"].startswith(f"{local_server.endpoint_url}/api/v1/blobs/")

    put = send(target["upload_url"], data)
    assert put.status_code == 200
    assert put.headers["etag"] == f'"{md5(data)}"'

    response = finalize(
        api,
        repository,
        sid,
        "dir/file.bin",
        upload_token=target["upload_token"],
        checksum=md5(data),
        size_bytes=len(data),
        content_type="application/octet-stream",
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"path": "dir/file.bin", "etag": md5(data)}

    (change,) = changes(api, repository, sid)
    assert change["path"] == "dir/file.bin"
    assert change["entry"]["size"] == len(data)
    assert change["entry"]["e_tag"] == md5(data)
    assert change["entry"]["content_type"] == "application/octet-stream"
    assert change["entry"]["metadata"] == {}
    assert read(api, repository, "dir/file.bin", session_id=sid) == data


@pytest.mark.local_blobs_only("the S3 store answers in_place (test_s3_server)")
def test_in_place_is_ignored_by_the_local_store(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    base = f"/organizations/{org}/repositories/{name}"
    sid = session(api, repository)
    query = {"session_id": sid, "path": "x.bin", "in_place": "true"}
    started = api.put(f"{base}/object", params=query)
    assert started.status_code == 200, started.text
    assert "upload_headers" not in started.json()  # its own single-use URL, as always


def test_finalize_accepts_quoted_checksum_content_type_and_metadata(
    api: httpx.Client, repository: str
) -> None:
    sid = session(api, repository)
    data = b'{"a": 1}'
    target = start(api, repository, sid, "doc.json")
    etag = send(target["upload_url"], data).headers["etag"]
    response = finalize(
        api,
        repository,
        sid,
        "doc.json",
        upload_token=target["upload_token"],
        checksum=etag,
        content_type="application/json",
        metadata={"owner": "ada", "note": "ünïcode ok"},
    )
    assert response.status_code == 201, response.text
    head = api.head(f"{r(repository)}/object", params={"path": "doc.json", "session_id": sid})
    assert head.status_code == 200
    assert head.headers["content-type"] == "application/json"
    assert head.headers["x-tilde-meta-owner"] == "ada"
    assert head.headers["x-tilde-meta-note"] == "ünïcode ok"


def test_empty_and_multi_megabyte_objects(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    big = os.urandom(3 * 1024 * 1024 + 17)
    assert upload(api, repository, sid, "empty", b"")["etag"] == md5(b"")
    assert upload(api, repository, sid, "big", big)["etag"] == md5(big)
    assert read(api, repository, "empty", session_id=sid) == b""
    assert read(api, repository, "big", session_id=sid) == big


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("checksum", "0" * 32, "checksum_mismatch"), ("size_bytes", 3, "size_mismatch")],
)
def test_mismatch_stages_nothing(
    api: httpx.Client, repository: str, field: str, value: object, code: str
) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "x.bin")
    send(target["upload_url"], b"four")
    response = finalize(
        api, repository, sid, "x.bin", upload_token=target["upload_token"], **{field: value}
    )
    assert error(response, 400, contains=field.split("_")[0])["code"] == code
    assert changes(api, repository, sid) == []


def test_finalize_before_upload_is_rejected(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "x.bin")
    response = finalize(api, repository, sid, "x.bin", upload_token=target["upload_token"])
    assert error(response, 400, contains="no bytes were uploaded")["code"] == "upload_incomplete"
    assert changes(api, repository, sid) == []


@pytest.mark.local_blobs_only(
    "the local data plane refuses a second upload to a URL; S3 takes it (finalize stays single use)"
)
def test_tokens_and_upload_urls_are_single_use(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "once.txt")
    assert send(target["upload_url"], b"first").status_code == 200
    error(send(target["upload_url"], b"second"), 409, contains="already uploaded")
    token = target["upload_token"]
    assert finalize(api, repository, sid, "once.txt", upload_token=token).status_code == 201
    reused = finalize(api, repository, sid, "once.txt", upload_token=token)
    assert error(reused, 409, contains="upload token already used")["code"] == "upload_token_used"
    error(send(target["upload_url"], b"overwrite"), 409, contains="already uploaded")
    assert read(api, repository, "once.txt", session_id=sid) == b"first"


@pytest.mark.local_blobs_only("forges the local data plane's tokens")
def test_forged_tokens_and_urls_are_rejected(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "f.txt")
    payload, signature = target["upload_token"].split(".")
    forged = f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    body = error(send(target["upload_url"] + "x", b"data"), 403, contains="invalid signature")
    assert body["code"] == "forbidden"
    assert send(target["upload_url"], b"data").status_code == 200
    response = finalize(api, repository, sid, "f.txt", upload_token=forged)
    assert error(response, 400, contains="invalid signature")["code"] == "invalid_upload_token"
    response = finalize(api, repository, sid, "f.txt", upload_token="garbage")
    error(response, 400, contains="malformed")
    # the upload URL's token is not an upload token, and vice versa
    response = finalize(api, repository, sid, "f.txt", upload_token=url_token(target["upload_url"]))
    error(response, 400, contains="another purpose")
    base = target["upload_url"].split("?")[0]
    error(send(f"{base}?token={target['upload_token']}", b"data"), 403, contains="another purpose")
    error(send(base, b"data"), 400, contains="token")
    assert changes(api, repository, sid) == []


@pytest.mark.local_blobs_only("expires the local data plane's tokens")
def test_expired_tokens_and_urls_are_rejected(
    api: httpx.Client, repository: str, local_server: LocalServer
) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "late.txt")
    assert send(target["upload_url"], b"bytes").status_code == 200
    keys = signer(local_server)
    claims = {k: v for k, v in token_claims(target["upload_token"]).items() if k not in "kx"}
    old = keys.sign("upload-token", claims, ttl=60, now=0)
    response = finalize(api, repository, sid, "late.txt", upload_token=old)
    assert error(response, 400, contains="expired")["code"] == "invalid_upload_token"
    url_claims = {
        k: v for k, v in token_claims(url_token(target["upload_url"])).items() if k not in "kx"
    }
    expired_url = (
        target["upload_url"].split("?")[0]
        + "?token="
        + keys.sign("blob-upload", url_claims, ttl=60, now=0)
    )
    error(send(expired_url, b"bytes"), 403, contains="expired")
    assert changes(api, repository, sid) == []


def test_token_scope_is_repository_session_and_path(
    api: httpx.Client, repository: str, unique_name: Callable[..., str], local_server: LocalServer
) -> None:
    sid = session(api, repository)
    other_sid = session(api, repository)
    target = start(api, repository, sid, "scoped.txt")
    send(target["upload_url"], b"scoped")
    token = target["upload_token"]
    error(
        finalize(api, repository, sid, "other.txt", upload_token=token),
        400,
        contains="another path",
    )
    error(
        finalize(api, repository, other_sid, "scoped.txt", upload_token=token),
        400,
        contains="another session",
    )
    other_repo = f"{local_server.org}/{unique_name('repo')}"
    assert (
        api.post(
            f"/organizations/{local_server.org}/repositories",
            json={"name": other_repo.split("/")[1]},
        ).status_code
        == 201
    )
    other_repo_sid = session(api, other_repo)
    error(
        finalize(api, other_repo, other_repo_sid, "scoped.txt", upload_token=token),
        400,
        contains="another repository",
    )
    assert changes(api, repository, sid) == []
    assert changes(api, repository, other_sid) == []
    assert finalize(api, repository, sid, "scoped.txt", upload_token=token).status_code == 201


def test_sessions_must_be_open_and_of_this_repository(
    api: httpx.Client, repository: str, unique_name: Callable[..., str], local_server: LocalServer
) -> None:
    params = {"path": "a.txt"}
    unknown = api.put(
        f"{r(repository)}/object",
        params={**params, "session_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12},
    )
    assert error(unknown, 404, contains="session")["code"] == "session_not_found"
    committed = session(api, repository)
    assert (
        api.post(f"{r(repository)}/sessions/{committed}", json={"message": "m"}).status_code == 200
    )
    error(
        api.put(f"{r(repository)}/object", params={**params, "session_id": committed}),
        400,
        contains="committed",
    )
    rolled_back = session(api, repository)
    assert api.delete(f"{r(repository)}/sessions/{rolled_back}").status_code == 204
    error(
        api.put(f"{r(repository)}/object", params={**params, "session_id": rolled_back}),
        400,
        contains="rolled back",
    )
    other_repo = f"{local_server.org}/{unique_name('repo')}"
    api.post(
        f"/organizations/{local_server.org}/repositories", json={"name": other_repo.split("/")[1]}
    )
    foreign = session(api, other_repo)
    error(
        api.put(f"{r(repository)}/object", params={**params, "session_id": foreign}),
        404,
        contains="session",
    )


def test_upload_starts_stop_as_soon_as_a_used_session_closes(
    api: httpx.Client, repository: str
) -> None:
    # The server remembers sessions it found open; closing one must make it forget at once.
    for close in ("commit", "rollback"):
        sid = session(api, repository)
        upload(api, repository, sid, f"{close}/first.txt", b"first")
        start(api, repository, sid, f"{close}/second.txt")
        if close == "commit":
            closed = api.post(f"{r(repository)}/sessions/{sid}", json={"message": "m"})
            assert closed.status_code == 200, closed.text
        else:
            assert api.delete(f"{r(repository)}/sessions/{sid}").status_code == 204
        late = api.put(f"{r(repository)}/object", params={"session_id": sid, "path": "late"})
        expected = "committed" if close == "commit" else "rolled back"
        assert error(late, 400, contains=expected)["code"] == "session_closed"


def test_finalize_into_a_closed_session_is_rejected(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    target = start(api, repository, sid, "a.txt")
    send(target["upload_url"], b"bytes")
    assert api.delete(f"{r(repository)}/sessions/{sid}").status_code == 204
    response = finalize(api, repository, sid, "a.txt", upload_token=target["upload_token"])
    error(response, 400, contains="rolled back")


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
def test_bad_paths_are_rejected_everywhere(
    api: httpx.Client, repository: str, path: str, problem: str
) -> None:
    sid = session(api, repository)
    params = {"session_id": sid, "path": path}
    assert (
        error(api.put(f"{r(repository)}/object", params=params), 400, contains=problem)["code"]
        == "invalid_path"
    )
    error(
        api.post(f"{r(repository)}/object/finalize", params=params, json={"upload_token": "t"}),
        400,
        contains=problem,
    )
    error(api.post(f"{r(repository)}/object/multipart", params=params), 400, contains=problem)
    error(api.get(f"{r(repository)}/object", params={"path": path}), 400, contains=problem)
    assert api.head(f"{r(repository)}/object", params={"path": path}).status_code == 400
    error(api.delete(f"{r(repository)}/object", params=params), 400, contains=problem)
    copy = {"session_id": sid, "source_path": path, "destination_path": "ok"}
    error(api.post(f"{r(repository)}/object/copy", params=copy), 400, contains="source_path")
    copy = {"session_id": sid, "source_path": "ok", "destination_path": path}
    error(api.post(f"{r(repository)}/object/copy", params=copy), 400, contains="destination_path")
    response = api.post(
        f"{r(repository)}/objects/delete", params={"session_id": sid}, json={"paths": ["ok", path]}
    )
    error(response, 400, contains="paths[1]")
    assert changes(api, repository, sid) == []


def test_missing_parameters_and_bad_bodies(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    error(api.put(f"{r(repository)}/object", params={"path": "a"}), 400, contains="session_id")
    error(api.put(f"{r(repository)}/object", params={"session_id": sid}), 400, contains="path")
    url = f"{r(repository)}/object/finalize"
    params = {"session_id": sid, "path": "a"}
    error(api.post(url, params=params, json={}), 400, contains="upload_token")
    error(
        api.post(
            url, params=params, content=b"not json", headers={"content-type": "application/json"}
        ),
        400,
        contains="json",
    )
    target = start(api, repository, sid, "a")
    send(target["upload_url"], b"x")
    token = target["upload_token"]
    error(
        finalize(api, repository, sid, "a", upload_token=token, checksum="xyz"),
        400,
        contains="checksum",
    )
    error(
        finalize(api, repository, sid, "a", upload_token=token, size_bytes=-1),
        400,
        contains="size_bytes",
    )
    error(
        finalize(api, repository, sid, "a", upload_token=token, metadata={"bad key": "v"}),
        400,
        contains="metadata",
    )
    error(
        finalize(api, repository, sid, "a", upload_token=token, metadata={"k": "a\r\nb"}),
        400,
        contains="control",
    )
    error(
        finalize(api, repository, sid, "a", upload_token=token, content_type="a\nb"),
        400,
        contains="content_type",
    )
    assert changes(api, repository, sid) == []
    assert finalize(api, repository, sid, "a", upload_token=token, size_bytes=1).status_code == 201


def test_control_plane_needs_an_api_key(repository: str, local_server: LocalServer) -> None:
    with httpx.Client(base_url=f"{local_server.endpoint_url}/api/v1") as anonymous:
        response = anonymous.put(f"{r(repository)}/object", params={"session_id": "s", "path": "a"})
        error(response, 401)


# --- multipart uploads ----------------------------------------------------------------------


def multipart_start(api: httpx.Client, repo: str, sid: str, path: str) -> dict[str, str]:
    response = api.post(f"{r(repo)}/object/multipart", params={"session_id": sid, "path": path})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"upload_id", "upload_token"}
    return body


def part_url(
    api: httpx.Client, repo: str, sid: str, path: str, mp: dict[str, str], number: int
) -> httpx.Response:
    return api.get(
        f"{r(repo)}/object/multipart/part",
        params={"session_id": sid, "path": path, **mp, "part_number": number},
    )


def put_part(
    api: httpx.Client, repo: str, sid: str, path: str, mp: dict[str, str], number: int, data: bytes
) -> str:
    response = part_url(api, repo, sid, path, mp, number)
    assert response.status_code == 200, response.text
    put = send(response.json()["upload_url"], data)
    assert put.status_code == 200, put.text
    return put.headers["etag"]


def complete(
    api: httpx.Client,
    repo: str,
    sid: str,
    path: str,
    mp: dict[str, str],
    parts: list[dict[str, Any]],
    **extra: Any,
) -> httpx.Response:
    return api.post(
        f"{r(repo)}/object/multipart/complete",
        params={"session_id": sid, "path": path},
        json={**mp, "parts": parts, **extra},
    )


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
def test_multipart_round_trip(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    chunks = [os.urandom(100_000), os.urandom(7), os.urandom(1_500_000)]
    mp = multipart_start(api, repository, sid, "big/object")
    # parts may arrive in any order; small non-final parts are fine
    etags = {
        n: put_part(api, repository, sid, "big/object", mp, n, chunks[n - 1]) for n in (3, 1, 2)
    }
    assert etags[1] == f'"{md5(chunks[0])}"'
    parts = [{"part_number": n, "etag": etags[n]} for n in (1, 2, 3)]
    data = b"".join(chunks)
    response = complete(
        api,
        repository,
        sid,
        "big/object",
        mp,
        parts,
        size_bytes=len(data),
        content_type="application/x-test",
    )
    assert response.status_code == 201, response.text
    expected = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest() + "-3"
    assert response.json() == {"path": "big/object", "etag": expected}
    assert read(api, repository, "big/object", session_id=sid) == data
    head = api.head(f"{r(repository)}/object", params={"path": "big/object", "session_id": sid})
    assert head.headers["etag"] == f'"{expected}"'
    assert head.headers["content-length"] == str(len(data))
    ranged = api.get(
        f"{r(repository)}/object",
        params={"path": "big/object", "session_id": sid},
        headers={"Range": "bytes=99990-100020"},
        follow_redirects=True,
    )
    assert ranged.status_code == 206
    assert ranged.content == data[99990:100021]
    reused = complete(api, repository, sid, "big/object", mp, parts)
    error(reused, 409, contains="already used")


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
def test_multipart_checksums(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    mp = multipart_start(api, repository, sid, "c")
    etag = put_part(api, repository, sid, "c", mp, 1, b"hello")
    parts = [{"part_number": 1, "etag": etag}]
    error(
        complete(api, repository, sid, "c", mp, parts, checksum="0" * 32), 400, contains="checksum"
    )
    error(
        complete(api, repository, sid, "c", mp, parts, checksum="0" * 32 + "-1"),
        400,
        contains="checksum",
    )
    assert changes(api, repository, sid) == []
    response = complete(api, repository, sid, "c", mp, parts, checksum=md5(b"hello"))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("number", [0, -1, 10001])
def test_part_numbers_out_of_range(api: httpx.Client, repository: str, number: int) -> None:
    sid = session(api, repository)
    mp = multipart_start(api, repository, sid, "p")
    error(part_url(api, repository, sid, "p", mp, number), 400, contains="part_number")
    response = complete(api, repository, sid, "p", mp, [{"part_number": number, "etag": md5(b"")}])
    error(response, 400, contains="part_number")


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
def test_multipart_complete_rejects_bad_part_lists(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    mp = multipart_start(api, repository, sid, "m")
    e1 = put_part(api, repository, sid, "m", mp, 1, b"one")
    e2 = put_part(api, repository, sid, "m", mp, 2, b"two")
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([], "at least one part"),
        (
            [{"part_number": 1, "etag": e1}, {"part_number": 3, "etag": e2}],
            "part 3 was not uploaded",
        ),
        ([{"part_number": 1, "etag": e2}], "part 1 etag"),
        ([{"part_number": 2, "etag": e2}, {"part_number": 1, "etag": e1}], "ascending"),
        ([{"part_number": 1, "etag": e1}, {"part_number": 1, "etag": e1}], "without duplicates"),
        ([{"part_number": 1, "etag": "nope"}], "not a hex md5"),
        ([{"part_number": 1}], "etag"),
    ]
    for parts, problem in cases:
        error(complete(api, repository, sid, "m", mp, parts), 400, contains=problem)
    both = [{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": e2}]
    error(complete(api, repository, sid, "m", mp, both, size_bytes=7), 400, contains="size_bytes")
    assert changes(api, repository, sid) == []
    assert complete(api, repository, sid, "m", mp, both, size_bytes=6).status_code == 201
    assert read(api, repository, "m", session_id=sid) == b"onetwo"


def test_multipart_token_scope(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    mp = multipart_start(api, repository, sid, "s")
    other = multipart_start(api, repository, sid, "s")
    mixed = {"upload_id": other["upload_id"], "upload_token": mp["upload_token"]}
    error(part_url(api, repository, sid, "s", mixed, 1), 400, contains="another upload_id")
    error(part_url(api, repository, sid, "t", mp, 1), 400, contains="another path")
    forged = {**mp, "upload_token": mp["upload_token"][:-3] + "abc"}
    error(part_url(api, repository, sid, "s", forged, 1), 400, contains="signature")
    response = api.delete(
        f"{r(repository)}/object/multipart", params={"session_id": sid, "path": "s", **mixed}
    )
    error(response, 400, contains="another upload_id")


@pytest.mark.local_blobs_only("reads the local folder's part files")
def test_multipart_abort(api: httpx.Client, repository: str, local_server: LocalServer) -> None:
    sid = session(api, repository)
    mp = multipart_start(api, repository, sid, "a")
    etag = put_part(api, repository, sid, "a", mp, 1, b"part")
    late_url = part_url(api, repository, sid, "a", mp, 2).json()["upload_url"]
    uploads = local_server.data_dir / "blobs" / "uploads"
    assert mp["upload_id"] in os.listdir(uploads)
    params = {"session_id": sid, "path": "a", **mp}
    assert api.delete(f"{r(repository)}/object/multipart", params=params).status_code == 204
    assert mp["upload_id"] not in os.listdir(uploads)
    error(send(late_url, b"late"), 404, contains="not in progress")
    response = complete(api, repository, sid, "a", mp, [{"part_number": 1, "etag": etag}])
    error(response, 404, contains="not in progress")
    assert changes(api, repository, sid) == []


# --- the official tilde-sdk against this server ---------------------------------------------


@pytest.mark.local_blobs_only(
    "shrinks tilde's parts below S3's 5 MiB minimum (test_s3_server runs tilde on S3)"
)
def test_tilde_sdk_puts_and_reads(
    repository: str, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tilde
    from tilde.resources import objects as tilde_objects

    client = tilde.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)
    repo = client.repository(repository)
    small = os.urandom(2048)
    large = os.urandom(300_000)
    # shrink tilde's 64 MiB multipart threshold so its multipart path runs on a small object
    monkeypatch.setattr(tilde_objects, "SINGLE_UPLOAD_LIMIT", 100_000)
    monkeypatch.setattr(tilde_objects, "MULTIPART_PART_SIZE", 128_000)
    with repo.session() as s:
        single = s.objects.put("t/small.bin", small)
        multi = s.objects.put("t/large.bin", large)
        assert single.etag == md5(small)
        assert multi.etag.endswith("-3")
        assert s.objects.get("t/small.bin").read() == small
        assert [c.path for c in s.uncommitted()] == ["t/large.bin", "t/small.bin"]
        commit_id = s.commit("from tilde")
    assert commit_id
    objects = repo.commits.get(commit_id).objects  # reads the latest commit (tilde never sends ref)
    assert objects.get("t/large.bin").read() == large
    reader = objects.get("t/large.bin", byte_range=(10, 19))
    assert reader.read() == large[10:20]
    assert reader.content_range == f"bytes 10-19/{len(large)}"
    meta = objects.head("t/small.bin")
    assert meta.content_length == len(small)
    assert meta.etag == f'"{md5(small)}"'
    listed = list(objects.list(prefix="t/", delimiter="/"))
    assert [(e.path, e.type, e.entry.size if e.entry else None) for e in listed] == [
        ("t/large.bin", "object", len(large)),
        ("t/small.bin", "object", len(small)),
    ]
    with repo.session() as s:
        copied = s.objects.copy("t/small.bin", "t/copy.bin")
        assert (copied.source_path, copied.destination_path) == ("t/small.bin", "t/copy.bin")
        s.objects.delete("t/large.bin")
        assert s.objects.delete_many(["t/small.bin", "t/missing"]) == 1
        changed = {record.path: record.entry for record in s.uncommitted()}
        assert changed["t/large.bin"] is None  # a staged delete parses as an entry-less record
        assert changed["t/small.bin"] is None
        copy_entry = changed["t/copy.bin"]
        assert copy_entry is not None and copy_entry.size == len(small)
        s.rollback()
