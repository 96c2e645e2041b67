"""The inputs ``put()`` uploads from: sizes, slices read in pieces, and typed errors for
inputs it cannot upload (no server needed)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path

import pytest

from lamina import InvalidArgumentTypeError
from lamina._sources import (
    CHUNK_SIZE,
    SMALL_BODY,
    Slice,
    Source,
    StreamSource,
    file_chunks,
    open_source,
    put_chunk,
)


def test_a_slice_reads_its_part_in_chunks_and_is_re_iterable() -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 10)
    progress: list[int] = []
    part = Slice(
        lambda offset, length: data[offset : offset + length], 5, len(data) - 5, progress.append
    )
    assert b"".join(part.chunks()) == data[5:]
    assert progress == [CHUNK_SIZE, CHUNK_SIZE, 5]
    # a retried request iterates the body again: progress first takes back what it counted
    assert b"".join(part.chunks()) == data[5:]
    assert sum(progress) == len(data) - 5
    assert progress[3] == -(len(data) - 5)


def test_a_slice_of_a_shrunken_source_fails() -> None:
    with pytest.raises(OSError, match="10 bytes early"):
        list(Slice(lambda offset, length: b"", 0, 10, None).chunks())


def test_sources_know_the_size_they_can() -> None:
    for data, size in ((b"abc", 3), (memoryview(b"abcd"), 4), (bytearray(b"ab"), 2)):
        source = open_source(data, Iterable)
        assert isinstance(source, Source) and source.size == size
    buffer = io.BytesIO(b"0123456789")
    buffer.seek(4)
    source = open_source(buffer, Iterable)
    assert isinstance(source, Source) and source.size == 6
    assert source.body(0, 6, None) == b"456789"
    big = open_source(bytes(SMALL_BODY + 2), Iterable)
    assert isinstance(big, Source)
    assert isinstance(big.body(0, big.size, None), bytes)  # bytes whole are sent as they are
    assert isinstance(big.body(1, big.size - 1, None), Slice)


def test_a_path_source_is_closed_after_use(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    source = open_source(path, Iterable)
    assert isinstance(source, Source) and source.size == 100
    source.close()
    with pytest.raises(ValueError):
        source.body(0, 100, None)


def test_inputs_of_unknown_size_are_streams(tmp_path: Path) -> None:
    chunks = iter([b"a", b"b"])
    source = open_source(chunks, Iterable)
    assert isinstance(source, StreamSource) and source.chunks is chunks
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped")
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        piped = open_source(pipe, Iterable)
        assert isinstance(piped, StreamSource)
        assert b"".join(file_chunks(pipe)) == b"piped"


async def _agen() -> AsyncIterator[bytes]:
    yield b"x"


def test_async_iterables_only_where_the_client_takes_them() -> None:
    chunks = _agen()
    assert isinstance(open_source(chunks, AsyncIterable), StreamSource)
    with pytest.raises(InvalidArgumentTypeError, match="async_generator"):
        open_source(chunks, Iterable)
    with pytest.raises(InvalidArgumentTypeError, match="or an async iterable"):
        open_source(42, AsyncIterable)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("a str", r"got a str; it uploads bytes: encode the text \(data.encode\(\)\)"),
        (42, "cannot upload int: pass bytes"),
        ({"a": b"b"}, "cannot upload dict"),
        (io.StringIO("text"), "text mode"),
    ],
)
def test_inputs_it_cannot_upload_are_typed_errors_that_say_what_to_pass(
    data: object, match: str
) -> None:
    with pytest.raises(InvalidArgumentTypeError, match=match) as caught:
        open_source(data, Iterable)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)


def test_chunks_of_an_iterable_must_be_bytes() -> None:
    assert put_chunk(b"a") == b"a"
    assert put_chunk(bytearray(b"b")) == b"b"
    assert put_chunk(memoryview(b"c")) == b"c"
    with pytest.raises(InvalidArgumentTypeError, match=r"yields str.*text\.encode\(\)"):
        put_chunk("text")
    with pytest.raises(InvalidArgumentTypeError, match="yields int"):
        put_chunk(7)
