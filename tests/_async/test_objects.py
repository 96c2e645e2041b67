"""Objects against the real server: put of every input kind, reads, head, list, copy, delete."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lamina import AsyncClient, AsyncRepository, BadRequestError, NotFoundError
from lamina._async._object_writer import PutData
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(local_server: LocalServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url
    ) as client:
        yield client


@pytest.fixture
def repo(client: AsyncClient, repository: str) -> AsyncRepository:
    return client.repository(repository)


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
        assert await reader.read() == rest  # cached
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
    with pytest.raises(ValueError):
        await reader.read()


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
    with pytest.raises(NotFoundError):
        await repo.objects.head("nope")
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
        assert [record async for record in session.uncommitted()] == []
