"""Reading an upload's body as the client signed it, streaming, in constant memory.

The body's bytes are handed on as they arrive (to the blob store) and checked at the end, by
:meth:`Payload.check`, before anything is staged: the SHA-256 the client signed (a hex
``x-amz-content-sha256``), the chunk signatures of an aws-chunked body
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, with or without a trailer), or none
(``UNSIGNED-PAYLOAD``, ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``); then a ``Content-MD5`` and an
``x-amz-checksum-crc32``/``-sha1``/``-sha256`` (a header, or the aws-chunked trailer). Other
checksum algorithms (CRC32C, CRC64NVME) are taken as sent, not verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from lamina_server.gateway.s3_errors import S3Error, invalid_argument, invalid_request
from lamina_server.gateway.signing import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    ChunkSignatures,
    is_sha256,
)
from lamina_server.storage.blobs.sigv4 import UNSIGNED

MAX_LINE = 4096  # a chunk's header line or a trailer's line
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")
_CHECKSUMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


_VERIFIED: dict[str, Callable[[], _Hash]] = {
    "crc32": _Crc32,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}


def _bad_body(message: str) -> S3Error:
    return S3Error(400, "IncompleteBody", message)


class Payload:
    """The body of one upload request, as ``chunks()``; ``check()`` once it was read."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str],
        payload: str,
        chunks: ChunkSignatures | None,
    ) -> None:
        self._body = body
        self._headers = headers
        self._payload = payload
        self._signatures = chunks
        self._sha256 = hashlib.sha256() if is_sha256(payload) else None
        self._decoded = 0
        self._trailer: dict[str, str] = {}
        self._checksum = self._checksum_named(headers)
        self._hash = _VERIFIED[self._checksum]() if self._checksum in _VERIFIED else None
        if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER) and chunks is None:
            raise invalid_argument(f"{payload} needs a signed request")
        if not (
            self._sha256 is not None
            or payload == UNSIGNED
            or payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
        ):
            raise invalid_argument(f"x-amz-content-sha256 {payload!r} is not one S3 defines")

    @staticmethod
    def _checksum_named(headers: dict[str, str]) -> str | None:
        trailer = headers.get("x-amz-trailer", "").strip().lower()
        if trailer:
            name = trailer.removeprefix("x-amz-checksum-")
            if name == trailer or name not in _CHECKSUMS:
                raise invalid_argument(f"x-amz-trailer {trailer!r} names no checksum S3 defines")
            return name
        for name in _CHECKSUMS:
            if f"x-amz-checksum-{name}" in headers:
                return name
        return None

    @property
    def chunked(self) -> bool:
        return self._payload.startswith("STREAMING-")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes (aws-chunked framing removed), as they arrive."""
        source = self._decode() if self.chunked else self._body
        async for chunk in source:
            if not chunk:
                continue
            self._decoded += len(chunk)
            if self._sha256 is not None:
                self._sha256.update(chunk)
            if self._hash is not None:
                self._hash.update(chunk)
            yield chunk

    async def _decode(self) -> AsyncIterator[bytes]:
        reader = _Reader(self._body)
        while True:
            line = await reader.line()
            size_text, _, extension = line.partition(b";")
            if not _HEX.fullmatch(size_text):
                raise _bad_body("an aws-chunked chunk does not start with its size (hex)")
            size = int(size_text, 16)
            digest = hashlib.sha256() if self._signatures is not None else None
            remaining = size
            while remaining:
                piece = await reader.take(remaining)
                remaining -= len(piece)
                if digest is not None:
                    digest.update(piece)
                yield piece
            if self._signatures is not None and digest is not None:
                name, _, signature = extension.decode("latin-1").partition("=")
                if name.strip() != "chunk-signature":
                    raise S3Error(403, "SignatureDoesNotMatch", "a chunk carries no signature")
                self._signatures.check_chunk(digest.hexdigest(), signature.strip())
            if size == 0:
                await self._read_trailer(reader)
                return
            if await reader.line() != b"":
                raise _bad_body("an aws-chunked chunk is longer than its size says")

    async def _read_trailer(self, reader: _Reader) -> None:
        canonical = b""
        while (line := await reader.line()) != b"":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                if self._signatures is None:
                    raise invalid_argument("an unsigned body's trailer carries a signature")
                self._signatures.check_trailer(canonical, value)
                continue
            self._trailer[name] = value
            canonical += f"{name}:{value}\n".encode("latin-1")

    def check(self, etag: str) -> None:
        """After the body was read whole (its blob's MD5 is ``etag``): every digest it was
        sent with matches; an :class:`S3Error` otherwise."""
        declared = self._headers.get("x-amz-decoded-content-length")
        if self.chunked and declared is not None and declared != str(self._decoded):
            raise _bad_body(
                f"x-amz-decoded-content-length says {declared} bytes; the body held {self._decoded}"
            )
        if self._sha256 is not None and self._sha256.hexdigest() != self._payload:
            raise S3Error(
                400,
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 is not the x-amz-content-sha256 it was signed with",
            )
        md5 = self._headers.get("content-md5")
        if md5 is not None and _decoded_digest(md5, "Content-MD5").hex() != etag:
            raise S3Error(400, "BadDigest", "the Content-MD5 you specified did not match the body")
        if self._checksum is not None and self._hash is not None:
            name = f"x-amz-checksum-{self._checksum}"
            sent = self._trailer.get(name, self._headers.get(name))
            if sent is None:
                raise invalid_request(f"the body's trailer lacks {name}")
            if _decoded_digest(sent, name) != self._hash.digest():
                raise S3Error(400, "BadDigest", f"the {name} you specified did not match the body")


def _decoded_digest(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument(f"{name} is not base64") from None


class _Reader:
    """Lines and byte counts out of a stream of chunks, holding at most one chunk."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self._buffer = b""
        self._offset = 0

    async def _fill(self) -> None:
        async for chunk in self._body:
            if chunk:
                self._buffer = self._buffer[self._offset :] + chunk
                self._offset = 0
                return
        raise _bad_body("the body ended before its last aws-chunked chunk")

    async def line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n", self._offset)) < 0:
            if len(self._buffer) - self._offset > MAX_LINE:
                raise _bad_body("an aws-chunked line is too long")
            await self._fill()
        line = self._buffer[self._offset : end]
        self._offset = end + 2
        return line

    async def take(self, most: int) -> bytes:
        if self._offset == len(self._buffer):
            await self._fill()
        piece = self._buffer[self._offset : self._offset + most]
        self._offset += len(piece)
        return piece
