"""Objects against the real server: put of every input kind, reads, head, list, copy, delete."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from lamina import (
    APIError,
    AsyncClient,
    AsyncObjectReader,
    AsyncRepository,
    BadRequestError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    RangeNotSatisfiableError,
    TransportError,
)
from lamina._sources import PutData
from lamina._transport import create_async_transport
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def async_chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def sync_chunks(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks


async def test_put_every_input_kind_and_read_back(repo: AsyncRepository, tmp_path: Path) -> None:
    on_disk = tmp_path / "disk.bin"
    on_disk.write_bytes(b"from a path")
    opened = tmp_path / "opened.bin"
    opened.write_bytes(b"from an open file")
    inputs: dict[str, PutData] = {
        "bytes": b"plain bytes",
        "bytearray": bytearray(b"a bytearray"),
        "memoryview": memoryview(b"a memoryview"),
        "bytesio": io.BytesIO(b"an in-memory file"),
        "path": on_disk,
        "iterable": sync_chunks(b"sync ", b"chunks"),
        "async-iterable": async_chunks(b"async ", b"chunks"),
    }
    expected = {
        "bytes": b"plain bytes",
        "bytearray": b"a bytearray",
        "memoryview": b"a memoryview",
        "bytesio": b"an in-memory file",
        "path": b"from a path",
        "iterable": b"sync chunks",
        "async-iterable": b"async chunks",
        "file": b"from an open file",
        "pipe": b"from a pipe",
    }
    async with repo.session() as session:
        for name, data in inputs.items():
            result = await session.objects.put(f"kinds/{name}", data)
            assert result.path == f"kinds/{name}"
            if "iterable" in name:  # size unknown up front: a multipart upload of one part
                single_part = hashlib.md5(bytes.fromhex(md5(expected[name]))).hexdigest()
                assert result.etag == f"{single_part}-1"
            else:
                assert result.etag == md5(expected[name])
        with opened.open("rb") as file:
            await session.objects.put("kinds/file", file)
        read_end, write_end = os.pipe()
        os.write(write_end, b"from a pipe")
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:  # not seekable: streamed, size unknown
            await session.objects.put("kinds/pipe", pipe)
        for name, content in expected.items():
            reader = session.objects.get(f"kinds/{name}")
            assert await reader.read() == content
            await reader.close()
        await session.commit("every kind")
    for name, content in expected.items():
        async with repo.objects.get(f"kinds/{name}") as reader:
            assert await reader.read() == content
            assert reader.content_length == len(content)


async def test_reader_read_n_iter_bytes_range_and_cache(repo: AsyncRepository) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB
    async with repo.session() as session:
        await session.objects.put("blob.bin", data, content_type="application/x-test")
        await session.commit("blob")

    async with repo.objects.get("blob.bin") as reader:
        assert reader.content_type == "application/x-test"
        assert reader.content_length == len(data)
        assert reader.etag == md5(data)
        assert await reader.read(10) == data[:10]
        assert await reader.read(5) == data[10:15]
        rest = await reader.read()
        assert rest == data[15:]
        assert await reader.read() == b""  # file semantics: the body is consumed
        assert await reader.read(1) == b""

    async with repo.objects.get("blob.bin", byte_range=(0, 1023)) as reader:
        assert await reader.read() == data[:1024]
        assert reader.content_range == f"bytes 0-1023/{len(data)}"
        assert reader.content_length == 1024

    async with repo.objects.get("blob.bin", byte_range=(1024, None)) as reader:
        assert await reader.read() == data[1024:]

    async with repo.objects.get("blob.bin", cache=False) as reader:
        pieces = [piece async for piece in reader.iter_bytes(10_000)]
    assert b"".join(pieces) == data
    assert all(len(piece) == 10_000 for piece in pieces[:-1])
    assert 0 < len(pieces[-1]) <= 10_000

    reader = repo.objects.get("blob.bin", cache=False)
    assert await reader.read(3) == data[:3]
    await reader.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        await reader.read()


@pytest.mark.local_blobs_only("redacts the local data plane's token")
async def test_a_range_past_the_end_is_typed_and_its_error_shows_no_token(
    repo: AsyncRepository,
) -> None:
    async with repo.session() as session:
        await session.objects.put("short.txt", b"0123456789")
        await session.commit("short")
    with pytest.raises(RangeNotSatisfiableError) as caught:
        async with repo.objects.get("short.txt", byte_range=(100, None)):
            pass
    error = caught.value
    assert isinstance(error, APIError) and error.status_code == 416
    assert "/blobs/download?token=[REDACTED]" in error.url
    shown = f"{error} {error!r} {error.url} {error.message} {error.response_text}"
    assert "token=[REDACTED]" in shown
    assert not re.search(r"token=(?!\[REDACTED\])", shown)


async def test_a_second_read_after_the_end_returns_nothing(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        await session.objects.put("twice.txt", b"abc")
        await session.commit("twice")
    async with repo.objects.get("twice.txt") as reader:
        assert await reader.read() == b"abc"
        assert await reader.read() == b""
    reader = repo.objects.get("twice.txt")
    assert await reader.read(2) == b"ab"
    assert await reader.read() == b"c"
    assert await reader.read() == b""
    await reader.close()


async def test_reads_of_every_size_cross_the_received_pieces(repo: AsyncRepository) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)  # streamed in many pieces, not read at once
    async with repo.session() as session:
        await session.objects.put("big.bin", data)
        await session.commit("big")

    async with repo.objects.get("big.bin", cache=False) as reader:
        assert reader.content_length == len(data)
        assert await reader.read(0) == b""
        assert await reader.read(1) == data[:1]
        assert await reader.read(70_000) == data[1:70_001]
        position = 70_001
        pieces = reader.iter_bytes(100_003)
        for _ in range(5):
            piece = await pieces.__anext__()
            assert piece == data[position : position + 100_003]
            position += len(piece)
        assert await reader.read(1_000_000) == data[position : position + 1_000_000]
        position += 1_000_000
        rest = [piece async for piece in reader.iter_bytes(None)]
        assert b"".join(rest) == data[position:]
        assert await reader.read(1) == b""

    async with repo.objects.get("big.bin", cache=False) as reader:
        sizes = [len(piece) async for piece in reader.iter_bytes(1024 * 1024)]
    assert sizes == [1024 * 1024] * 3 + [7]

    async with repo.objects.get("big.bin") as reader:
        with pytest.raises(InvalidArgumentError, match="chunk_size"):
            async for _ in reader.iter_bytes(0):
                pass
        assert await reader.read() == data


_TRUNCATED = os.urandom(1024 * 1024)


class _Truncating(BaseHTTPRequestHandler):
    """Promises twice the bytes it sends, then drops the connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(2 * len(_TRUNCATED)))
        self.end_headers()
        self.wfile.write(_TRUNCATED)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def truncating_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Truncating)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_failed_read_loses_none_of_the_bytes_received(truncating_server: str) -> None:
    async with AsyncClient(api_key="k", endpoint_url=truncating_server, max_retries=0) as client:
        reader = AsyncObjectReader(client, "/blob", {"path": "blob"})
        assert await reader.read(10) == _TRUNCATED[:10]
        with pytest.raises(TransportError):
            await reader.read(len(_TRUNCATED) + 10)  # more than will ever arrive
        assert await reader.read(len(_TRUNCATED)) == _TRUNCATED[10:]
        await reader.close()


async def test_head_returns_metadata(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        await session.objects.put(
            "meta.txt", b"hello", content_type="text/plain", metadata={"owner": "ana", "tier": "2"}
        )
        staged = await session.objects.head("meta.txt")
        assert staged.content_length == 5
        await session.commit("meta")
    head = await repo.objects.head("meta.txt")
    assert head.etag == md5(b"hello")
    assert head.content_type == "text/plain"
    assert head.content_length == 5
    assert head.last_modified is not None
    assert head.metadata == {"owner": "ana", "tier": "2"}
    [entry] = [item async for item in repo.objects.list(prefix="meta")]
    assert entry.entry is not None
    assert entry.entry.metadata == {"owner": "ana", "tier": "2"}


async def test_list_with_delimiter_and_pagination(repo: AsyncRepository) -> None:
    paths = [f"dir/{index:02d}.txt" for index in range(7)] + ["dir/sub/a.txt", "top.txt"]
    async with repo.session() as session:
        for path in paths:
            await session.objects.put(path, path.encode())
        await session.commit("tree")

    listed = [entry async for entry in repo.objects.list(prefix="dir/", delimiter="/", page_size=3)]
    assert [(entry.path, entry.type) for entry in listed] == [
        *((f"dir/{index:02d}.txt", "object") for index in range(7)),
        ("dir/sub/", "prefix"),
    ]
    assert listed[0].entry is not None and listed[0].entry.size == len("dir/00.txt")

    top = [(entry.path, entry.type) async for entry in repo.objects.list(delimiter="/")]
    assert top == [("dir/", "prefix"), ("top.txt", "object")]

    capped = [entry.path async for entry in repo.objects.list(amount=4, page_size=3)]
    assert capped == sorted(paths)[:4]

    pages = [page async for page in repo.objects.list(page_size=4).pages()]
    assert [len(page.items) for page in pages] == [4, 4, 1]

    resumed = [entry.path async for entry in repo.objects.list(after="dir/05.txt")]
    assert resumed == ["dir/06.txt", "dir/sub/a.txt", "top.txt"]


async def test_copy_delete_and_delete_many(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        for index in range(5):
            await session.objects.put(f"d/{index}", b"x%d" % index)
        await session.commit("seed")

    async with repo.session() as session:
        copied = await session.objects.copy("d/0", "copies/0")
        assert (copied.source_path, copied.destination_path) == ("d/0", "copies/0")
        await session.objects.delete("d/1")
        assert await session.objects.delete_many(["d/2", "d/3", "missing"]) == 2
        assert await session.objects.delete_many([]) == 0
        changes = {record.path: record.entry async for record in session.uncommitted()}
        assert set(changes) == {"copies/0", "d/1", "d/2", "d/3"}
        assert changes["d/1"] is None
        assert changes["copies/0"] is not None
        await session.commit("copy and delete")

    remaining = [entry.path async for entry in repo.objects.list()]
    assert remaining == ["copies/0", "d/0", "d/4"]
    async with repo.objects.get("copies/0") as reader:
        assert await reader.read() == b"x0"


async def test_delete_many_batches_over_a_thousand(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        assert await session.objects.delete_many(f"none/{index}" for index in range(1001)) == 0


async def test_missing_object_and_bad_paths_raise_typed_errors(repo: AsyncRepository) -> None:
    with pytest.raises(NotFoundError) as caught:
        await repo.objects.head("nope")
    assert caught.value.message  # a HEAD has no body: the message comes from elsewhere
    assert caught.value.method == "HEAD"
    with pytest.raises(NotFoundError):
        async with repo.objects.get("nope"):
            pass
    with pytest.raises(NotFoundError):
        await repo.objects.get("nope").read()
    async with repo.session() as session:
        with pytest.raises(BadRequestError) as caught:
            await session.objects.put("../escape", b"x")
        assert "path" in caught.value.message
        with pytest.raises(BadRequestError):
            await session.objects.put("/leading-slash", b"x")
        with pytest.raises(NotFoundError):
            await session.objects.copy("nope", "elsewhere")
        with pytest.raises(InvalidArgumentTypeError, match=r"str.*encode") as wrong:
            await session.objects.put("text.txt", "a str")  # type: ignore[arg-type]
        assert isinstance(wrong.value, TypeError)
        with pytest.raises(InvalidArgumentTypeError, match="yields int"):
            await session.objects.put("ints.bin", [1, 2, 3])  # type: ignore[list-item]
        with pytest.raises(InvalidArgumentError, match="part_size") as bad:
            await session.objects.put("zero.bin", b"x", part_size=0)
        assert isinstance(bad.value, ValueError)
        with pytest.raises(InvalidArgumentError, match="byte_range"):
            repo.objects.get("x", byte_range=(5, 1))
        assert [record async for record in session.uncommitted()] == []


class _KeyLog(httpx.AsyncBaseTransport):
    """The client's real default transport, recording (not changing) each request it sends:
    its method, its path, and whether it carries the API key."""

    def __init__(self) -> None:
        self._real = create_async_transport(8)
        self.sent: list[tuple[str, str, bool]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, "authorization" in request.headers))
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest.mark.local_blobs_only("parts smaller than S3's 5 MiB minimum")
async def test_the_api_key_is_never_sent_to_a_signed_url(
    local_server: LocalServer, repository: str
) -> None:
    """The signed upload, part and download URLs are on the API's own origin here; the key
    must still stay off them (redirect to the download URL included)."""
    log = _KeyLog()
    data = os.urandom(300_000)
    async with (
        httpx.AsyncClient(transport=log) as http,
        AsyncClient(
            api_key=local_server.api_key,
            endpoint_url=local_server.endpoint_url,
            http_client=http,
            upload_extensions=False,  # the contract's uploads, by signed URLs
        ) as client,
    ):
        repo = client.repository(repository)
        async with repo.session() as session:
            await session.objects.put("single.bin", data)
            await session.objects.put("parts.bin", data, part_size=128 * 1024)
            await session.commit("signed urls")
        async with repo.objects.get("single.bin") as reader:
            assert await reader.read() == data
        async with repo.objects.get("parts.bin", byte_range=(10, 19)) as reader:
            assert await reader.read() == data[10:20]
    signed = [sent for sent in log.sent if sent[1].startswith("/api/v1/blobs/")]
    assert sorted({(method, path) for method, path, _ in signed}) == [
        ("GET", "/api/v1/blobs/download"),
        ("PUT", "/api/v1/blobs/part"),
        ("PUT", "/api/v1/blobs/upload"),
    ]
    assert [sent for sent in signed if sent[2]] == []
    api_calls = [sent for sent in log.sent if sent not in signed]
    assert api_calls and all(with_key for _, _, with_key in api_calls)
