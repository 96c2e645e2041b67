"""Object reads, listings, changes, copies and deletes over real HTTP.

Objects are written through the full upload protocol (PUT /object, the presigned PUT, finalize)
and read back through the 307 redirect to the presigned download URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lamina.testing import LocalServer


def error(response: httpx.Response, status: int, *, contains: str = "") -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert contains.lower() in body["message"].lower(), body
    return body


def r(repo: str) -> str:
    org, name = repo.split("/")
    return f"/organizations/{org}/repositories/{name}"


def session(api: httpx.Client, repo: str) -> str:
    response = api.post(f"{r(repo)}/sessions")
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def commit(api: httpx.Client, repo: str, sid: str, message: str = "commit") -> str:
    response = api.post(f"{r(repo)}/sessions/{sid}", json={"message": message})
    assert response.status_code == 200, response.text
    commit_id: str = response.json()["commit_id"]
    return commit_id


def put(api: httpx.Client, repo: str, sid: str, path: str, data: bytes, **extra: Any) -> None:
    response = api.put(f"{r(repo)}/object", params={"session_id": sid, "path": path})
    assert response.status_code == 200, response.text
    target = response.json()
    assert httpx.put(target["upload_url"], content=data).status_code == 200
    response = api.post(
        f"{r(repo)}/object/finalize",
        params={"session_id": sid, "path": path},
        json={"upload_token": target["upload_token"], **extra},
    )
    assert response.status_code == 201, response.text


def get(api: httpx.Client, repo: str, path: str, **params: str) -> httpx.Response:
    return api.get(f"{r(repo)}/object", params={"path": path, **params}, follow_redirects=True)


def listing(api: httpx.Client, repo: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"{r(repo)}/objects", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def changes(api: httpx.Client, repo: str, sid: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"{r(repo)}/changes", params={"session_id": sid, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def download_address(api: httpx.Client, repo: str, path: str, **params: str) -> str:
    """The blob address the download URL is signed for (read from the token's payload)."""
    response = api.get(f"{r(repo)}/object", params={"path": path, **params})
    token = parse_qs(urlsplit(response.headers["location"]).query)["token"][0]
    payload = token.split(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    address: str = claims["a"]
    return address


DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def stored(api: httpx.Client, repository: str) -> str:
    """A repository with ``data.bin`` (DATA, with metadata) and ``empty`` committed."""
    sid = session(api, repository)
    put(
        api,
        repository,
        sid,
        "data.bin",
        DATA,
        content_type="application/x-data",
        metadata={"owner": "ada", "Stage": "raw"},
    )
    put(api, repository, sid, "empty", b"")
    commit(api, repository, sid)
    return repository


# --- GET and HEAD ---------------------------------------------------------------------------


@pytest.mark.local_blobs_only("the download URL is the local data plane's")
def test_get_redirects_to_a_signed_download_url(
    api: httpx.Client, stored: str, local_server: LocalServer
) -> None:
    response = api.get(f"{r(stored)}/object", params={"path": "data.bin"})
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(f"{local_server.endpoint_url}/api/v1/blobs/download?token=")
    assert response.headers["cache-control"] == "private, no-store"
    download = httpx.get(location)  # no API key: the signature is the credential
    assert download.status_code == 200
    assert download.content == DATA
    assert download.headers["etag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert download.headers["content-type"] == "application/x-data"
    assert download.headers["content-length"] == str(len(DATA))
    assert download.headers["accept-ranges"] == "bytes"
    modified = parsedate_to_datetime(download.headers["last-modified"])
    assert abs((datetime.now(timezone.utc) - modified).total_seconds()) < 120
    head = httpx.head(location)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(DATA))


@pytest.mark.local_blobs_only("tampers with the local data plane's token")
def test_tampered_download_url_is_forbidden(api: httpx.Client, stored: str) -> None:
    location = api.get(f"{r(stored)}/object", params={"path": "data.bin"}).headers["location"]
    error(httpx.get(location[:-1] + ("A" if location[-1] != "A" else "B")), 403, contains="token")


HUGE_RANGE = pytest.mark.local_blobs_only("S3 refuses a range past 64-bit positions itself")


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),  # first
        ("bytes=1000-1999", 1000, 2000),  # middle
        ("bytes=-100", len(DATA) - 100, len(DATA)),  # suffix
        ("bytes=10000-", 10000, len(DATA)),  # open-ended
        ("bytes=10200-99999", 10200, len(DATA)),  # clamped to the end
        ("bytes=-99999", 0, len(DATA)),  # suffix longer than the object
        ("bytes=0-0", 0, 1),
        # Positions longer than Python parses (4300 digits) are past any end, not a 500.
        pytest.param(f"bytes=0-{'9' * 5000}", 0, len(DATA), marks=HUGE_RANGE),
        pytest.param(f"bytes=-{'9' * 5000}", 0, len(DATA), marks=HUGE_RANGE),
        (f"bytes={'0' * 5000}10-19", 10, 20),
    ],
)
def test_byte_ranges(api: httpx.Client, stored: str, header: str, start: int, end: int) -> None:
    response = api.get(
        f"{r(stored)}/object",
        params={"path": "data.bin"},
        headers={"Range": header},
        follow_redirects=True,
    )
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)


@pytest.mark.local_blobs_only("S3 answers a download URL's bad ranges itself, in its own format")
@pytest.mark.parametrize(
    ("path", "header", "status"),
    [
        ("data.bin", f"bytes={len(DATA)}-", 416),
        ("data.bin", "bytes=20000-30000", 416),
        ("data.bin", "bytes=-0", 416),
        ("data.bin", "bytes=5-4", 416),
        ("data.bin", f"bytes={'9' * 5000}-", 416),
        ("empty", "bytes=0-", 416),
        ("data.bin", "bytes=abc", 400),
        ("data.bin", "bytes=0-1,5-6", 400),
        ("data.bin", "items=0-1", 400),
        ("data.bin", "bytes=-", 400),
    ],
)
def test_bad_ranges(api: httpx.Client, stored: str, path: str, header: str, status: int) -> None:
    response = api.get(
        f"{r(stored)}/object",
        params={"path": path},
        headers={"Range": header},
        follow_redirects=True,
    )
    body = error(response, status, contains="range")
    if status == 416:
        size = len(DATA) if path == "data.bin" else 0
        assert response.headers["content-range"] == f"bytes */{size}"
        assert body["code"] == "range_not_satisfiable"


def test_empty_object_reads_empty(api: httpx.Client, stored: str) -> None:
    response = get(api, stored, "empty")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_head_reports_metadata_headers(api: httpx.Client, stored: str) -> None:
    response = api.head(f"{r(stored)}/object", params={"path": "data.bin"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert response.headers["content-type"] == "application/x-data"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["x-tilde-meta-owner"] == "ada"
    assert response.headers["x-tilde-meta-stage"] == "raw"
    assert parsedate_to_datetime(response.headers["last-modified"]).year >= 2024
    plain = api.head(f"{r(stored)}/object", params={"path": "empty"})
    assert plain.headers["content-type"] == "application/octet-stream"
    assert not [name for name in plain.headers if name.startswith("x-tilde-meta-")]


def test_missing_objects_are_404(api: httpx.Client, stored: str) -> None:
    body = error(api.get(f"{r(stored)}/object", params={"path": "nope"}), 404, contains="nope")
    assert body["code"] == "object_not_found"
    assert api.head(f"{r(stored)}/object", params={"path": "nope"}).status_code == 404
    error(api.get(f"{r(stored)}/object", params={"path": "data.bi"}), 404)


def test_unknown_repository_and_missing_key(api: httpx.Client, local_server: LocalServer) -> None:
    response = api.get(
        f"/organizations/{local_server.org}/repositories/nope/object", params={"path": "a"}
    )
    error(response, 404, contains="nope")
    response = httpx.get(f"{local_server.endpoint_url}/api/v1{r(local_server.org + '/x')}/objects")
    error(response, 401)


# --- views: sessions and refs ---------------------------------------------------------------


def test_session_overlay_and_reads_at_a_commit(api: httpx.Client, repository: str) -> None:
    first = session(api, repository)
    put(api, repository, first, "doc.txt", b"version one")
    c1 = commit(api, repository, first)
    second = session(api, repository)
    put(api, repository, second, "doc.txt", b"version two")
    put(api, repository, second, "new.txt", b"new")
    # the session sees its own writes; the committed state does not yet
    assert get(api, repository, "doc.txt", session_id=second).content == b"version two"
    assert get(api, repository, "doc.txt").content == b"version one"
    error(api.get(f"{r(repository)}/object", params={"path": "new.txt"}), 404)
    staged = [e["path"] for e in listing(api, repository, session_id=second)["results"]]
    assert staged == ["doc.txt", "new.txt"]
    assert [e["path"] for e in listing(api, repository)["results"]] == ["doc.txt"]
    c2 = commit(api, repository, second)
    assert get(api, repository, "doc.txt").content == b"version two"
    # a read at the old commit returns the old bytes, in GET, HEAD and listings
    assert get(api, repository, "doc.txt", ref=c1).content == b"version one"
    assert get(api, repository, "doc.txt", ref=c2).content == b"version two"
    head = api.head(f"{r(repository)}/object", params={"path": "doc.txt", "ref": c1})
    assert head.headers["content-length"] == str(len(b"version one"))
    assert [e["path"] for e in listing(api, repository, ref=c1)["results"]] == ["doc.txt"]
    error(api.get(f"{r(repository)}/object", params={"path": "new.txt", "ref": c1}), 404)


def test_ref_and_session_are_exclusive_and_checked(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    both = {"path": "data.bin", "session_id": sid, "ref": "abc"}
    error(api.get(f"{r(stored)}/object", params=both), 400, contains="mutually exclusive")
    assert api.head(f"{r(stored)}/object", params=both).status_code == 400
    error(
        api.get(f"{r(stored)}/objects", params={"session_id": sid, "ref": "abc"}),
        400,
        contains="mutually exclusive",
    )
    error(api.get(f"{r(stored)}/object", params={"path": "data.bin", "ref": "0" * 64}), 404)
    error(api.get(f"{r(stored)}/objects", params={"ref": "0" * 64}), 404)
    unknown_session = "00000000-0000-4000-8000-000000000000"
    error(
        api.get(f"{r(stored)}/object", params={"path": "data.bin", "session_id": unknown_session}),
        404,
        contains="session",
    )


# --- listings -------------------------------------------------------------------------------


def test_listing_with_delimiter_across_pages(api: httpx.Client, repository: str) -> None:
    sid = session(api, repository)
    paths = ["a/1", "a/2", "a/sub/3", "b/x", "c.txt", "d/e/f", "e.txt", "f/g"]
    for path in paths:
        put(api, repository, sid, path, path.encode())
    commit(api, repository, sid)

    seen: list[tuple[str, str]] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"delimiter": "/", "amount": 2}
        if after is not None:
            params["after"] = after
        body = listing(api, repository, **params)
        pages += 1
        assert len(body["results"]) <= 2
        assert body["pagination"]["max_per_page"] == 2
        for item in body["results"]:
            seen.append((item["path"], item["type"]))
            if item["type"] == "prefix":
                assert "entry" not in item or item["entry"] is None
            else:
                entry = item["entry"]
                assert entry["size"] == len(item["path"])
                assert entry["e_tag"] == hashlib.md5(item["path"].encode()).hexdigest()
                assert set(entry) >= {"last_modified", "size", "e_tag", "metadata", "content_type"}
        if not body["pagination"]["has_more"]:
            break
        after = body["pagination"]["next_offset"]
        assert after
    assert seen == [
        ("a/", "prefix"),
        ("b/", "prefix"),
        ("c.txt", "object"),
        ("d/", "prefix"),
        ("e.txt", "object"),
        ("f/", "prefix"),
    ]
    assert pages == 3

    inside = listing(api, repository, prefix="a/", delimiter="/")["results"]
    assert [(i["path"], i["type"]) for i in inside] == [
        ("a/1", "object"),
        ("a/2", "object"),
        ("a/sub/", "prefix"),
    ]
    flat = listing(api, repository, prefix="a/")["results"]
    assert [i["path"] for i in flat] == ["a/1", "a/2", "a/sub/3"]
    everything = listing(api, repository, amount=1000)
    assert [i["path"] for i in everything["results"]] == sorted(paths)
    assert everything["pagination"]["has_more"] is False


@pytest.mark.parametrize("amount", [0, -5, 1001])
def test_listing_amount_out_of_range(api: httpx.Client, repository: str, amount: int) -> None:
    error(api.get(f"{r(repository)}/objects", params={"amount": amount}), 400, contains="amount")
    sid = session(api, repository)
    error(
        api.get(f"{r(repository)}/changes", params={"session_id": sid, "amount": amount}),
        400,
        contains="amount",
    )


def test_listing_rejects_bad_cursor_and_prefix(api: httpx.Client, repository: str) -> None:
    error(api.get(f"{r(repository)}/objects", params={"prefix": "a\x00"}), 400, contains="prefix")
    response = api.get(f"{r(repository)}/objects", params={"after": "a\x00b"})
    assert error(response, 400, contains="cursor")["code"] == "invalid_cursor"


# --- changes, copies and deletes ------------------------------------------------------------


def test_changes_are_paginated_and_show_deletes(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    for index in range(5):
        put(api, stored, sid, f"new/{index}", b"x")
    assert (
        api.delete(
            f"{r(stored)}/object", params={"session_id": sid, "path": "data.bin"}
        ).status_code
        == 204
    )
    records: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"amount": 2}
        if after:
            params["after"] = after
        body = changes(api, stored, sid, **params)
        records += body["results"]
        if not body["pagination"]["has_more"]:
            break
        after = body["pagination"]["next_offset"]
    assert [rec["path"] for rec in records] == ["data.bin", *[f"new/{i}" for i in range(5)]]
    assert records[0]["entry"] is None
    assert all(rec["entry"]["size"] == 1 for rec in records[1:])
    only_new = changes(api, stored, sid, prefix="new/")["results"]
    assert len(only_new) == 5
    error(api.get(f"{r(stored)}/changes"), 400, contains="session_id")


@pytest.mark.local_blobs_only("reads the local data plane's token")
def test_copy_shares_the_blob(api: httpx.Client, stored: str, local_server: LocalServer) -> None:
    sid = session(api, stored)
    objects_dir = local_server.data_dir / "blobs" / "objects"
    before = sum(len(files) for _, _, files in os.walk(objects_dir))
    response = api.post(
        f"{r(stored)}/object/copy",
        params={"session_id": sid, "source_path": "data.bin", "destination_path": "copy/of.bin"},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"source_path": "data.bin", "destination_path": "copy/of.bin"}
    assert get(api, stored, "copy/of.bin", session_id=sid).content == DATA
    assert download_address(api, stored, "copy/of.bin", session_id=sid) == download_address(
        api, stored, "data.bin"
    )
    assert sum(len(files) for _, _, files in os.walk(objects_dir)) == before
    head = api.head(f"{r(stored)}/object", params={"path": "copy/of.bin", "session_id": sid})
    assert head.headers["x-tilde-meta-owner"] == "ada"
    commit(api, stored, sid)
    assert get(api, stored, "copy/of.bin").content == DATA


def test_copy_errors(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    missing = {"session_id": sid, "source_path": "nope", "destination_path": "x"}
    error(api.post(f"{r(stored)}/object/copy", params=missing), 404, contains="nope")
    no_session = {"source_path": "data.bin", "destination_path": "x"}
    error(api.post(f"{r(stored)}/object/copy", params=no_session), 400, contains="session_id")
    assert changes(api, stored, sid)["results"] == []


def test_delete_stages_a_tombstone(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    params = {"session_id": sid, "path": "data.bin"}
    response = api.delete(f"{r(stored)}/object", params=params)
    assert response.status_code == 204
    assert response.content == b""
    error(api.get(f"{r(stored)}/object", params=params), 404)
    assert get(api, stored, "data.bin").content == DATA  # still there until the commit
    error(api.delete(f"{r(stored)}/object", params=params), 404, contains="data.bin")
    error(api.delete(f"{r(stored)}/object", params={"session_id": sid, "path": "never"}), 404)
    assert [rec["path"] for rec in changes(api, stored, sid)["results"]] == ["data.bin"]
    commit(api, stored, sid)
    error(api.get(f"{r(stored)}/object", params={"path": "data.bin"}), 404)


def test_delete_many(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    url = f"{r(stored)}/objects/delete"
    params = {"session_id": sid}
    error(api.post(url, params=params, json={"paths": []}), 400, contains="paths")
    error(api.post(url, params=params, json={"paths": ["x"] * 1001}), 400, contains="paths")
    error(api.post(url, params=params, json={}), 400, contains="paths")
    error(api.post(url, params=params, json={"paths": "data.bin"}), 400, contains="paths")
    assert changes(api, stored, sid)["results"] == []
    response = api.post(
        url, params=params, json={"paths": ["data.bin", "empty", "missing", "data.bin"]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2}
    assert sorted(rec["path"] for rec in changes(api, stored, sid)["results"]) == [
        "data.bin",
        "empty",
    ]
    commit(api, stored, sid)
    assert listing(api, stored)["results"] == []


def test_writes_need_an_open_session(api: httpx.Client, stored: str) -> None:
    sid = session(api, stored)
    commit(api, stored, sid)
    params = {"session_id": sid, "path": "data.bin"}
    error(api.delete(f"{r(stored)}/object", params=params), 400, contains="committed")
    copy = {"session_id": sid, "source_path": "data.bin", "destination_path": "y"}
    error(api.post(f"{r(stored)}/object/copy", params=copy), 400, contains="committed")
    error(
        api.post(
            f"{r(stored)}/objects/delete", params={"session_id": sid}, json={"paths": ["data.bin"]}
        ),
        400,
        contains="committed",
    )
    assert get(api, stored, "data.bin").content == DATA
