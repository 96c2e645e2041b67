"""What ``put()`` uploads from: its input wrapped in a source that knows its size if it can.

Bytes are never read whole into memory for file and ``Path`` inputs: a request body is a
:class:`Slice`, a re-iterable view that reads its part of the input in :data:`CHUNK_SIZE`
pieces (seek and read under a lock, so concurrent parts share one file safely). Inputs of
unknown size (iterables, non-seekable files) become a :class:`StreamSource`, which the
writer reads once, front to back.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeGuard

from lamina._errors import InvalidArgumentTypeError

__all__ = [
    "CHUNK_SIZE",
    "ProgressHook",
    "PutData",
    "Slice",
    "Source",
    "StreamSource",
    "file_chunks",
    "open_source",
    "put_chunk",
]

#: Size of the pieces request bodies are read and sent in.
CHUNK_SIZE = 1024 * 1024
#: Bodies this small are sent as one ``bytes`` object.
SMALL_BODY = 256 * 1024

PutData = bytes | bytearray | memoryview | IO[bytes] | Path | Iterable[bytes] | AsyncIterable[bytes]
ProgressHook = Callable[[int], None]

_WHAT_TO_PASS = (
    "pass bytes, bytearray or memoryview, a file opened in binary mode ('rb'), a pathlib.Path, "
    "or an iterable of bytes"
)


class Slice:
    """A re-iterable request body over one part of a source, reporting bytes as they go."""

    def __init__(
        self, read: Callable[[int, int], bytes], offset: int, length: int, hook: ProgressHook | None
    ) -> None:
        self._read = read
        self._offset = offset
        self.length = length
        self._hook = hook
        self._reported = 0

    def chunks(self) -> Iterator[bytes]:
        """The slice in pieces; a second pass first takes back the progress it reported."""
        if self._hook is not None and self._reported:
            self._hook(-self._reported)
            self._reported = 0
        position = self._offset
        end = self._offset + self.length
        while position < end:
            chunk = self._read(position, min(CHUNK_SIZE, end - position))
            if not chunk:
                raise OSError(f"source ended {end - position} bytes early")
            position += len(chunk)
            if self._hook is not None:
                self._reported += len(chunk)
                self._hook(len(chunk))
            yield chunk


class Source:
    """An input of known ``size`` whose slices can be read in any order."""

    size: int

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | Slice:
        """The request body for ``length`` bytes from ``offset``: small ones as ``bytes``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source opened itself."""


class MemorySource(Source):
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = data
        self._view = memoryview(data).cast("B")
        self.size = self._view.nbytes

    def _read(self, offset: int, length: int) -> bytes:
        return bytes(self._view[offset : offset + length])

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | Slice:
        if isinstance(self._data, bytes) and offset == 0 and length == self.size:
            return self._data
        if length <= SMALL_BODY:
            return self._read(offset, length)
        return Slice(self._read, offset, length, hook)


class SeekableSource(Source):
    """A seekable file read by position under a lock, so parts can be read concurrently."""

    def __init__(self, file: IO[bytes], start: int, size: int, owned: bool) -> None:
        self._file = file
        self._start = start
        self.size = size
        self._owned = owned
        self._lock = threading.Lock()

    def _read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self._file.seek(self._start + offset)
            return self._file.read(length)

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | Slice:
        if length <= SMALL_BODY:
            return self._read(offset, length)
        return Slice(self._read, offset, length, hook)

    def close(self) -> None:
        if self._owned:
            self._file.close()


class StreamSource:
    """Bytes of unknown size that can only be read once, front to back: ``chunks`` is an
    iterable (or, with the async client, an async iterable) of bytes-like pieces."""

    def __init__(self, chunks: object, owned: IO[bytes] | None = None) -> None:
        self.chunks = chunks
        self._owned = owned
        self.started = False

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    """A file read front to back in :data:`CHUNK_SIZE` pieces."""
    while chunk := file.read(CHUNK_SIZE):
        yield chunk


def put_chunk(chunk: object) -> bytes:
    """One piece of an iterable input as ``bytes``; anything but bytes-like is an error."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise InvalidArgumentTypeError(
        f"put() got an iterable that yields {type(chunk).__name__}, not bytes: "
        f"{_WHAT_TO_PASS}"
        + (" (encode text first: text.encode())" if isinstance(chunk, str) else "")
    )


def _file_source(file: IO[bytes], owned: bool) -> Source | StreamSource:
    try:
        seekable = file.seekable()
    except (OSError, ValueError):
        seekable = False
    if not seekable:
        return StreamSource(file_chunks(file), owned=file if owned else None)
    start = file.tell()
    size = file.seek(0, os.SEEK_END) - start
    file.seek(start)
    return SeekableSource(file, start, max(size, 0), owned)


def _is_file(data: object) -> TypeGuard[IO[bytes]]:
    return hasattr(data, "read")


def open_source(data: PutData, streams: type[Any]) -> Source | StreamSource:
    """Wrap ``put()`` input in a source; ``streams`` is the iterable type the client takes
    (``AsyncIterable`` or ``Iterable``: async iterables only with the async client).
    ``Path`` inputs are opened here and closed by ``close()``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return MemorySource(data)
    if isinstance(data, str):
        raise InvalidArgumentTypeError(
            f"put() got a str; it uploads bytes: encode the text (data.encode()), or pass "
            f"pathlib.Path(...) to upload a file ({_WHAT_TO_PASS})"
        )
    if isinstance(data, Path):
        return _file_source(data.open("rb", buffering=0), owned=True)
    if isinstance(data, io.TextIOBase):
        raise InvalidArgumentTypeError(f"put() got a file opened in text mode: {_WHAT_TO_PASS}")
    if _is_file(data):
        return _file_source(data, owned=False)
    if not isinstance(data, (streams, Iterable)) or isinstance(data, dict):
        raise InvalidArgumentTypeError(
            f"put() cannot upload {type(data).__name__}: {_WHAT_TO_PASS}"
            + ("" if streams is Iterable else " (or an async iterable of bytes)")
        )
    return StreamSource(data)
