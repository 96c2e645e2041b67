"""The gateway's SigV4 verification against the worked examples of AWS's documentation
("Signature Calculations for the Authorization Header" and "Transferring Payload in Multiple
Chunks", Amazon S3 API reference): a signature computed there verifies here, a changed one
does not, and the chunk signatures chain as documented."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from lamina_server.gateway import signing
from lamina_server.gateway.s3_errors import S3Error

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDENTIAL = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
WHEN = datetime(2013, 5, 24, tzinfo=timezone.utc)


def _signed(headers: dict[str, str], signed_headers: str, signature: str) -> signing.Signed:
    headers = {
        **headers,
        "authorization": f"AWS4-HMAC-SHA256 Credential={CREDENTIAL},"
        f"SignedHeaders={signed_headers},Signature={signature}",
    }
    return signing.parse(headers, [], WHEN)


def test_the_documented_get_object_signature_verifies() -> None:
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
        "x-amz-date": "20130524T000000Z",
    }
    signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    names = "host;range;x-amz-content-sha256;x-amz-date"
    signed = _signed(headers, names, signature)
    assert signed.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    arguments = {"method": "GET", "raw_path": b"/test.txt", "raw_query": b"", "headers": headers}
    signing.verify(signed, SECRET, **arguments)
    with pytest.raises(S3Error) as mismatch:
        signing.verify(signed, SECRET, **{**arguments, "raw_path": b"/test.txt2"})
    assert mismatch.value.code == "SignatureDoesNotMatch"


def test_the_documented_chunk_signatures_chain() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": signing.STREAMING_SIGNED,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
    }
    names = (
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class"
    )
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    signed = _signed(headers, names, seed)
    key = signing.verify(
        signed,
        SECRET,
        method="PUT",
        raw_path=b"/examplebucket/chunkObject.txt",
        raw_query=b"",
        headers=headers,
    )
    chain = signing.ChunkSignatures(key, signed)
    for data, signature in (
        (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ):
        chain.check_chunk(hashlib.sha256(data).hexdigest(), signature)
    with pytest.raises(S3Error):
        chain.check_chunk(hashlib.sha256(b"more").hexdigest(), "0" * 64)


def test_the_query_and_path_are_encoded_as_sigv4_signs_them() -> None:
    raw = b"prefix=a%20b%2Bc&list-type=2&delimiter=%2F&X-Amz-Signature=x"
    assert signing.canonical_query(raw, presigned=True) == (
        "delimiter=%2F&list-type=2&prefix=a%20b%2Bc"
    )
    assert signing.canonical_query(b"uploads", presigned=False) == "uploads="
    assert signing.canonical_path(b"/b/dir/a+b c%2A.txt") == "/b/dir/a%2Bb%20c%2A.txt"
