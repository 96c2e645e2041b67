"""The full upload protocol through a real server whose blob store is a real SeaweedFS: raw
HTTP and the official tilde SDK. Bytes go between the client and SeaweedFS; the server's
access log proves its data-plane routes carried none."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tilde

import lamina
from lamina.testing import LocalServer
from lamina_server import splicing
from lamina_server.storage.blobs.sigv4 import Credentials, SigV4
from tests.server import seaweedfs as weed
from tests.server.gateway_clients import new_credential, s3_client
from tests.server.seaweedfs import SeaweedFS

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_server(seaweedfs: SeaweedFS) -> Iterator[LocalServer]:
    bucket = "lamina-server-test"
    signer = SigV4(
        seaweedfs.endpoint, weed.REGION, bucket, Credentials(weed.ACCESS_KEY, weed.SECRET_KEY)
    )
    created = httpx.put(signer.url(""), headers=signer.headers("PUT", "", {}))
    assert created.status_code == 200, created.text
    with LocalServer(
        blob_store=seaweedfs.url(bucket, "data"), server_args=["--access-log"]
    ) as server:
        yield server


@pytest.fixture
def api(s3_server: LocalServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {s3_server.api_key}"}
    with httpx.Client(base_url=f"{s3_server.endpoint_url}/api/v1", headers=headers) as client:
        yield client


@pytest.fixture
def base(api: httpx.Client, s3_server: LocalServer, unique_name: Callable[..., str]) -> str:
    name = unique_name("s3")
    created = api.post(f"/organizations/{s3_server.org}/repositories", json={"name": name})
    assert created.status_code == 201, created.text
    return f"/organizations/{s3_server.org}/repositories/{name}"


def data_plane_hits(server: LocalServer) -> list[str]:
    """The access log's requests to the data plane (the log does record the control plane's)."""
    lines = server.log_path.read_text().splitlines()
    assert any("/object" in line for line in lines), "the access log records no requests"
    return [line for line in lines if "/api/v1/blobs/" in line]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_single_upload_goes_straight_to_the_store(
    api: httpx.Client, base: str, s3_server: LocalServer, seaweedfs: SeaweedFS
) -> None:
    session = api.post(f"{base}/sessions").json()["session_id"]
    query = {"session_id": session, "path": "data/a.bin"}
    data = os.urandom(200_000)

    def start() -> dict[str, str]:
        started = api.put(f"{base}/object", params=query)
        assert started.status_code == 200, started.text
        ticket: dict[str, str] = started.json()
        assert ticket["upload_url"].startswith(f"{seaweedfs.endpoint}/")
        put = httpx.put(ticket["upload_url"], content=data)  # no Authorization: presigned
        assert put.status_code == 200, put.text
        assert put.headers["etag"] == f'"{md5(data)}"'
        return ticket

    def finalize(ticket: dict[str, str], **body: object) -> httpx.Response:
        return api.post(
            f"{base}/object/finalize",
            params=query,
            json={"upload_token": ticket["upload_token"], **body},
        )

    # Mismatches are the local store's 400s, read from the store's HEAD.
    wrong = finalize(start(), size_bytes=len(data) + 1)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "size_mismatch")
    wrong = finalize(start(), checksum="0" * 32)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "checksum_mismatch")
    ticket = start()
    done = finalize(ticket, size_bytes=len(data), checksum=md5(data), content_type="text/x-a")
    assert done.status_code == 201, done.text
    again = finalize(ticket)
    assert (again.status_code, again.json()["code"]) == (409, "upload_token_used")
    assert api.post(f"{base}/sessions/{session}", json={"message": "s3"}).status_code == 200

    read = api.get(f"{base}/object", params={"path": "data/a.bin"})
    assert read.status_code == 307
    location = read.headers["location"]
    assert location.startswith(f"{seaweedfs.endpoint}/")
    whole = httpx.get(location)
    assert (whole.content, whole.headers["content-type"]) == (data, "text/x-a")
    ranged = httpx.get(location, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, data[10:20])
    assert data_plane_hits(s3_server) == []


def test_an_in_place_upload_is_written_once_where_it_is_read(
    api: httpx.Client, base: str, s3_server: LocalServer, seaweedfs: SeaweedFS
) -> None:
    session = api.post(f"{base}/sessions").json()["session_id"]
    query = {"session_id": session, "path": "in/place.bin"}
    data, other = os.urandom(70_000), os.urandom(70_000)

    def start() -> dict[str, Any]:
        started = api.put(f"{base}/object", params={**query, "in_place": "true"})
        assert started.status_code == 200, started.text
        ticket: dict[str, Any] = started.json()
        assert ticket["upload_headers"] == {"If-None-Match": "*"}
        assert "/blobs/" in ticket["upload_url"] and "/incoming/" not in ticket["upload_url"]
        return ticket

    def finalize(ticket: dict[str, Any], body: bytes) -> httpx.Response:
        return api.post(
            f"{base}/object/finalize",
            params=query,
            json={"upload_token": ticket["upload_token"], "checksum": md5(body)},
        )

    ticket = start()
    url, headers = ticket["upload_url"], ticket["upload_headers"]
    # The header is signed into the URL: a PUT without it is refused, so is a second write.
    assert httpx.put(url, content=data).status_code == 403
    assert httpx.put(url, content=data, headers=headers).status_code == 200
    assert httpx.put(url, content=other, headers=headers).status_code == 412
    # A mismatch frees the address: nothing was claimed, and the URL may be used again.
    wrong = finalize(ticket, other)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "checksum_mismatch")
    assert httpx.put(url, content=data, headers=headers).status_code == 200
    done = finalize(ticket, data)
    assert done.status_code == 201, done.text
    again = finalize(ticket, data)
    assert (again.status_code, again.json()["code"]) == (409, "upload_token_used")
    # Once finalized, the bytes can never change under the staged object.
    assert httpx.put(url, content=other, headers=headers).status_code == 412
    assert api.post(f"{base}/sessions/{session}", json={"message": "in place"}).status_code == 200
    location = api.get(f"{base}/object", params={"path": "in/place.bin"}).headers["location"]
    assert httpx.get(location).content == data
    assert data_plane_hits(s3_server) == []


def test_the_sdk_uploads_in_place(base: str, s3_server: LocalServer, seaweedfs: SeaweedFS) -> None:
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as http:
        client = lamina.Client(
            api_key=s3_server.api_key, endpoint_url=s3_server.endpoint_url, http_client=http
        )
        org, name = base.split("/")[2::2]
        repo = client.repository(f"{org}/{name}")
        data = os.urandom(10_000)
        with repo.session() as session:
            session.objects.put("sdk.bin", data)
            session.commit("in place")
        assert repo.objects.get("sdk.bin").read() == data
    (upload,) = [r for r in sent if r.method == "PUT" and str(r.url).startswith(seaweedfs.endpoint)]
    assert "/blobs/" in upload.url.path and upload.headers["if-none-match"] == "*"
    assert data_plane_hits(s3_server) == []


def test_multipart_parts_go_straight_to_the_store(
    api: httpx.Client, base: str, s3_server: LocalServer, seaweedfs: SeaweedFS
) -> None:
    session = api.post(f"{base}/sessions").json()["session_id"]
    query = {"session_id": session, "path": "big.bin"}
    started = api.post(f"{base}/object/multipart", params=query).json()
    ids = {"upload_id": started["upload_id"], "upload_token": started["upload_token"]}
    parts = [os.urandom(5 * MIB), os.urandom(123)]
    listed = []
    for number, part in enumerate(parts, start=1):
        url = api.get(
            f"{base}/object/multipart/part", params={**query, **ids, "part_number": number}
        ).json()["upload_url"]
        assert url.startswith(f"{seaweedfs.endpoint}/")
        put = httpx.put(url, content=part)
        assert put.status_code == 200, put.text
        listed.append({"part_number": number, "etag": put.headers["etag"]})
    total = sum(map(len, parts))
    wrong = api.post(
        f"{base}/object/multipart/complete",
        params=query,
        json={**ids, "parts": listed, "size_bytes": total + 1},
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "size_mismatch")
    done = api.post(
        f"{base}/object/multipart/complete",
        params=query,
        json={**ids, "parts": listed, "size_bytes": total},
    )
    assert done.status_code == 201, done.text
    assert done.json()["etag"].endswith("-2")
    assert api.post(f"{base}/sessions/{session}", json={"message": "mp"}).status_code == 200
    read = httpx.get(api.get(f"{base}/object", params={"path": "big.bin"}).headers["location"])
    assert read.content == b"".join(parts)
    assert read.headers["etag"].strip('"') == done.json()["etag"]
    assert data_plane_hits(s3_server) == []


def test_the_tilde_sdk_uploads_to_and_reads_from_the_store(
    s3_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    with tilde.Client(api_key=s3_server.api_key, endpoint_url=s3_server.endpoint_url) as client:
        org = client.organizations.get(s3_server.org)
        created = org.repositories.create(unique_name("tilde-s3"), description="s3")
        repo = client.repository(f"{s3_server.org}/{created.name}")
        data = os.urandom(70_000)
        with repo.session() as session:
            result = session.objects.put("t/x.bin", data)
            assert result.etag.strip('"') == md5(data)
            session.commit("via tilde")
        objects = next(iter(repo.commits.list(amount=1))).objects
        with objects.get("t/x.bin") as reader:  # follows the redirect to SeaweedFS
            assert reader.read() == data
        with objects.get("t/x.bin", byte_range=(5, 9)) as reader:
            assert reader.read() == data[5:10]
    assert data_plane_hits(s3_server) == []


def _written_bytes(pid: int) -> int:
    """Bytes process ``pid`` has written with write(2) and its kin (not ``splice(2)``)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/<pid>/io")


@pytest.mark.skipif(not splicing.AVAILABLE, reason="the relay needs Linux's splice(2)")
def test_the_gateway_relays_large_reads_from_the_store_without_reading_them(
    api: httpx.Client, base: str, s3_server: LocalServer
) -> None:
    data = os.urandom(8 * MIB + 123)
    small = os.urandom(1000)
    with lamina.Client(api_key=s3_server.api_key, endpoint_url=s3_server.endpoint_url) as client:
        repo = client.repository(
            base.removeprefix("/organizations/").replace("/repositories/", "/")
        )
        with repo.session() as writing:
            writing.objects.put("big.bin", data)
            writing.objects.put("small.bin", small)
            writing.commit("relay")
    s3 = s3_client(f"{s3_server.endpoint_url}/s3", new_credential(api))
    bucket = base.removeprefix("/organizations/").replace("/repositories/", ".")
    pid = s3_server.pid
    assert pid is not None
    before = _written_bytes(pid)
    assert s3.get_object(Bucket=bucket, Key="head/big.bin")["Body"].read() == data
    ranged = s3.get_object(Bucket=bucket, Key="head/big.bin", Range="bytes=1000-3145727")
    assert ranged["ContentRange"] == f"bytes 1000-3145727/{len(data)}"
    assert ranged["Body"].read() == data[1000:3145728]
    # 11 MiB went to the client; the server wrote a small part of that (its requests to the
    # store, the answers' heads), not the bytes.
    assert _written_bytes(pid) - before < MIB
    assert s3.get_object(Bucket=bucket, Key="head/small.bin")["Body"].read() == small  # streamed

    # A client that goes away mid-body costs nothing but its own connection.
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "head/big.bin"}, ExpiresIn=60
    )
    with httpx.stream("GET", url) as response:
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(data)
        received = next(response.iter_bytes(64 * 1024))
        assert data.startswith(received)
    for _ in range(3):
        assert s3.get_object(Bucket=bucket, Key="head/big.bin")["Body"].read() == data
    s3.close()
