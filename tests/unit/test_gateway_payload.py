"""Reading S3 upload bodies (:mod:`lamina_server.gateway.payload`): aws-chunked framing
removed, malformed framing refused (never a hang, never a 500), digests checked at the end."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator

import pytest

from lamina_server.gateway.payload import Payload
from lamina_server.gateway.s3_errors import S3Error
from lamina_server.gateway.signing import STREAMING_UNSIGNED_TRAILER, canonical_path

pytestmark = pytest.mark.anyio


async def _pieces(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _read(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


def _chunked(headers: dict[str, str], body: bytes) -> Payload:
    headers = {"content-encoding": "aws-chunked", **headers}
    return Payload(_pieces(body), headers, STREAMING_UNSIGNED_TRAILER, None)


async def test_framing_is_removed_and_the_trailer_checked() -> None:
    data = b"hello, chunked world"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = (
        b"5\r\nhello\r\n"
        + b"f\r\n, chunked world\r\n"
        + f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "20"}
    payload = _chunked(headers, body)
    assert await _read(payload) == data
    payload.check(hashlib.md5(data).hexdigest())
    wrong = _chunked({**headers, "x-amz-decoded-content-length": "21"}, body)
    await _read(wrong)
    with pytest.raises(S3Error) as length:
        wrong.check(hashlib.md5(data).hexdigest())
    assert length.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    "body",
    [
        b"-1\r\nabc\r\n0\r\n\r\n",  # a negative size
        b"zz\r\nabc\r\n0\r\n\r\n",  # not hex
        b"10\r\nshort",  # ends inside a chunk
        b"2\r\nabc\r\n0\r\n\r\n",  # a chunk longer than its size
        b"3\r\nabc\r\n",  # no last chunk
        b"1" * 5000,  # no line end
    ],
)
async def test_malformed_framing_is_refused(body: bytes) -> None:
    with pytest.raises(S3Error) as refused:
        await _read(_chunked({}, body))
    assert (refused.value.status, refused.value.code) == (400, "IncompleteBody")


async def test_a_signed_sha256_and_content_md5_are_checked() -> None:
    data = b"payload"
    signed = Payload(_pieces(data), {}, hashlib.sha256(b"other").hexdigest(), None)
    await _read(signed)
    with pytest.raises(S3Error) as mismatch:
        signed.check(hashlib.md5(data).hexdigest())
    assert mismatch.value.code == "XAmzContentSHA256Mismatch"
    md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    summed = Payload(_pieces(data), {"content-md5": md5}, "UNSIGNED-PAYLOAD", None)
    await _read(summed)
    with pytest.raises(S3Error) as digest:
        summed.check(hashlib.md5(data).hexdigest())
    assert digest.value.code == "BadDigest"


def test_unknown_payload_modes_are_refused() -> None:
    with pytest.raises(S3Error) as refused:
        Payload(_pieces(b""), {}, "SOMETHING-ELSE", None)
    assert refused.value.code == "InvalidArgument"


def test_a_path_whose_escapes_are_not_utf8_has_a_canonical_form() -> None:
    assert canonical_path(b"/bucket/%FF%FE/key") == "/bucket/%FF%FE/key"
