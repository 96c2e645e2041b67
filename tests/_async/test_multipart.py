"""Multipart uploads against the real server (small parts; one real 64 MiB+ upload is slow)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lamina import AsyncClient, AsyncRepository, LaminaError, NotFoundError
from lamina._async._object_writer import MULTIPART_PART_SIZE
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio

PART = 256 * 1024


class _Recorder:
    """Observes (never alters) the requests a client sends, with their statuses."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.urls: list[httpx.URL] = []

    async def on_response(self, response: httpx.Response) -> None:
        self.calls.append(
            (response.request.method, response.request.url.path, response.status_code)
        )
        self.urls.append(response.request.url)

    def count(self, method: str, path_suffix: str) -> int:
        return sum(1 for m, p, _ in self.calls if m == method and p.endswith(path_suffix))


@pytest.fixture
def recorder() -> _Recorder:
    return _Recorder()


@pytest.fixture
async def client(local_server: LocalServer, recorder: _Recorder) -> AsyncIterator[AsyncClient]:
    async with (
        httpx.AsyncClient(event_hooks={"response": [recorder.on_response]}) as http,
        AsyncClient(
            api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
        ) as client,
    ):
        yield client


def multipart_etag(data: bytes, part_size: int) -> str:
    digests = [
        hashlib.md5(data[offset : offset + part_size]).digest()
        for offset in range(0, len(data), part_size)
    ]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


async def read_all(repo: AsyncRepository, path: str) -> bytes:
    async with repo.objects.get(path, cache=False) as reader:
        return b"".join([chunk async for chunk in reader.iter_bytes()])


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
async def test_multipart_from_bytes_file_and_path(
    repo: AsyncRepository, recorder: _Recorder, tmp_path: Path
) -> None:
    data = os.urandom(PART * 3 + 1234)
    on_disk = tmp_path / "data.bin"
    on_disk.write_bytes(data)
    async with repo.session() as session:
        from_bytes = await session.objects.put("mp/bytes", data, part_size=PART)
        from_path = await session.objects.put(
            "mp/path", on_disk, part_size=PART, metadata={"kind": "path"}
        )
        with on_disk.open("rb") as file:
            from_file = await session.objects.put("mp/file", file, part_size=PART)
        await session.commit("multipart")
    expected = multipart_etag(data, PART)
    assert from_bytes.etag == from_path.etag == from_file.etag == expected
    assert recorder.count("POST", "/object/multipart") == 3
    assert recorder.count("GET", "/object/multipart/part") == 12
    assert recorder.count("POST", "/object/multipart/complete") == 3
    for path in ("mp/bytes", "mp/path", "mp/file"):
        assert await read_all(repo, path) == data
    head = await repo.objects.head("mp/path")
    assert head.content_length == len(data)
    assert head.metadata == {"kind": "path"}
    assert head.etag == expected


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
async def test_multipart_from_iterables_of_unknown_size(repo: AsyncRepository) -> None:
    pieces = [os.urandom(100_000) for _ in range(9)]
    data = b"".join(pieces)

    async def async_pieces() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async with repo.session() as session:
        from_async = await session.objects.put("it/async", async_pieces(), part_size=PART)
        from_sync = await session.objects.put("it/sync", iter(pieces), part_size=PART)
        empty = await session.objects.put("it/empty", iter([]), part_size=PART)
        await session.commit("iterables")
    assert from_async.etag == from_sync.etag == multipart_etag(data, PART)
    assert await read_all(repo, "it/async") == data
    assert await read_all(repo, "it/sync") == data
    assert empty.path == "it/empty"
    assert await read_all(repo, "it/empty") == b""


async def test_failed_multipart_is_aborted(repo: AsyncRepository, recorder: _Recorder) -> None:
    first = os.urandom(PART)

    async def failing() -> AsyncIterator[bytes]:
        yield first
        yield os.urandom(PART)
        raise OSError("disk went away")

    async with repo.session() as session:
        with pytest.raises(OSError, match="disk went away"):
            await session.objects.put("broken.bin", failing(), part_size=PART)
        aborts = [
            index
            for index, (method, path, _) in enumerate(recorder.calls)
            if method == "DELETE" and path.endswith("/object/multipart")
        ]
        assert aborts, recorder.calls
        assert recorder.calls[aborts[-1]][2] == 204
        # the parts are gone from the server: the upload can no longer be completed
        aborted = recorder.urls[aborts[-1]].params
        with pytest.raises(NotFoundError, match="not in progress"):
            await repo.client.request(
                "POST",
                f"{repo.api_path}/object/multipart/complete",
                params={"session_id": session.session_id, "path": "broken.bin"},
                json={
                    "upload_id": aborted["upload_id"],
                    "upload_token": aborted["upload_token"],
                    "parts": [{"part_number": 1, "etag": hashlib.md5(first).hexdigest()}],
                    "size_bytes": PART,
                },
            )
        with pytest.raises(NotFoundError):
            await session.objects.head("broken.bin")
        assert [record async for record in session.uncommitted()] == []


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
async def test_failed_part_upload_raises_typed_error_and_aborts(
    local_server: LocalServer, repository: str
) -> None:
    """Fault injection: the data plane answers one part PUT with 403, as an expired URL would."""
    seen: list[tuple[str, str]] = []
    real = httpx.AsyncHTTPTransport()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "PUT" and "/blobs/part" in request.url.path:
            return httpx.Response(403, json={"message": "expired", "code": "x", "request_id": "r"})
        return await real.handle_async_request(request)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        AsyncClient(
            api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
        ) as client,
        client.repository(repository).session() as session,
    ):
        with pytest.raises(LaminaError) as caught:
            await session.objects.put("x.bin", os.urandom(PART * 2), part_size=PART)
    assert getattr(caught.value, "status_code", None) == 403
    assert (
        "DELETE",
        f"/api/v1/organizations/{repository.replace('/', '/repositories/')}/object/multipart",
    ) in seen
    await real.aclose()


async def test_an_abort_that_meets_a_transient_failure_is_retried(
    local_server: LocalServer, repository: str
) -> None:
    """Fault injection: the first abort gets a 503 (a server restarting, say); the parts must
    not be left behind for it."""
    aborts: list[int] = []
    real = httpx.AsyncHTTPTransport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and request.url.path.endswith("/object/multipart"):
            if not aborts:
                aborts.append(503)
                return httpx.Response(503, json={"message": "busy", "code": "x", "request_id": "r"})
            response = await real.handle_async_request(request)
            aborts.append(response.status_code)
            return response
        return await real.handle_async_request(request)

    async def failing() -> AsyncIterator[bytes]:
        yield os.urandom(PART)
        raise OSError("disk went away")

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        AsyncClient(
            api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
        ) as client,
        client.repository(repository).session() as session,
    ):
        with pytest.raises(OSError, match="disk went away"):
            await session.objects.put("x.bin", failing(), part_size=PART)
    assert aborts == [503, 204]
    await real.aclose()


async def test_multipart_501_falls_back_to_single_upload(
    local_server: LocalServer, repository: str
) -> None:
    """Fault injection: a storage backend without multipart answers the initiate with 501."""
    initiates = 0
    real = httpx.AsyncHTTPTransport()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal initiates
        if request.method == "POST" and request.url.path.endswith("/object/multipart"):
            initiates += 1
            return httpx.Response(
                501, json={"message": "no multipart", "code": "not_implemented", "request_id": "r"}
            )
        return await real.handle_async_request(request)

    data = os.urandom(PART * 2)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        AsyncClient(
            api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
        ) as client,
    ):
        repo = client.repository(repository)
        async with repo.session() as session:
            first = await session.objects.put("a.bin", data, part_size=PART)
            second = await session.objects.put("b.bin", data, part_size=PART)
            await session.commit("fallback")
        assert first.etag == second.etag == hashlib.md5(data).hexdigest()
        assert initiates == 1  # sticky: the second put went straight to a single upload
        assert await read_all(repo, "b.bin") == data
        assert client._multipart_supported is False
        async with AsyncClient(
            api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
        ) as other:
            assert other._multipart_supported  # what one client learned is its own
            async with other.repository(repository).session() as session:
                await session.objects.put("c.bin", data, part_size=PART)
        assert initiates == 2
    await real.aclose()


@pytest.mark.slow
async def test_real_multipart_above_64_mib(repo: AsyncRepository, tmp_path: Path) -> None:
    size = MULTIPART_PART_SIZE + 3 * 1024 * 1024
    source = tmp_path / "big.bin"
    digest = hashlib.md5()
    with source.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    async with repo.session() as session:
        result = await session.objects.put("big.bin", source)
        await session.commit("big")
    assert result.etag.endswith("-2")
    check = hashlib.md5()
    async with repo.objects.get("big.bin", cache=False) as reader:
        assert reader.content_length == size
        async for chunk in reader.iter_bytes(1024 * 1024):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
async def test_put_reports_progress_single_and_multipart(
    repo: AsyncRepository, tmp_path: Path
) -> None:
    data = os.urandom(PART * 2 + 777)
    on_disk = tmp_path / "data.bin"
    on_disk.write_bytes(data)
    single: list[int] = []
    parts: list[int] = []
    async with repo.session() as session:
        await session.objects.put("progress/single", data[:1000], progress=single.append)
        await session.objects.put("progress/parts", on_disk, part_size=PART, progress=parts.append)
        await session.commit("progress")
    assert sum(single) == 1000
    assert sum(parts) == len(data)
    assert len(parts) > 1  # reported as the parts went, not once at the end
    assert await read_all(repo, "progress/parts") == data
