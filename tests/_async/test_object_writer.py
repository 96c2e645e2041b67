"""The upload sources and bodies behind ``put()`` (no server needed)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina._async._object_writer import CHUNK_SIZE, _Body, open_source

pytestmark = pytest.mark.anyio


async def drain(body: AsyncIterator[bytes] | _Body) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_body_reads_its_slice_in_chunks_and_is_re_iterable() -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 10)
    progress: list[int] = []
    body = _Body(
        lambda offset, length: data[offset : offset + length], 5, len(data) - 5, progress.append
    )
    assert await drain(body) == data[5:]
    assert progress == [CHUNK_SIZE, CHUNK_SIZE, 5]
    # a retried request iterates the body again: progress first takes back what it counted
    assert await drain(body) == data[5:]
    assert sum(progress) == len(data) - 5
    assert progress[3] == -(len(data) - 5)


async def test_body_of_a_shrunken_source_fails() -> None:
    body = _Body(lambda offset, length: b"", 0, 10, None)
    with pytest.raises(OSError, match="10 bytes early"):
        await drain(body)


async def test_sources_know_the_size_they_can() -> None:
    assert open_source(b"abc").size == 3
    assert open_source(memoryview(b"abcd")).size == 4
    buffer = io.BytesIO(b"0123456789")
    buffer.seek(4)
    source = open_source(buffer)
    assert source.size == 6
    assert await drain(_as_iter(source.body(0, 6, None))) == b"456789"


async def test_path_source_is_closed_after_use(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    source = open_source(path)
    assert source.size == 100
    source.close()
    with pytest.raises(ValueError):
        source.body(0, 100, None)


async def test_unsupported_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        open_source(42)  # type: ignore[arg-type]


async def _as_iter(body: bytes | _Body) -> AsyncIterator[bytes]:
    if isinstance(body, bytes):
        yield body
        return
    async for chunk in body:
        yield chunk
