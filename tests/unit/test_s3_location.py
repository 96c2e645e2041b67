"""Parsing ``--blob-store`` URLs, and the shape of SigV4 presigned URLs (SeaweedFS checks the
signatures themselves in tests/server/test_s3_store.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lamina_server.storage.blobs.s3_location import BlobStoreUrlError, parse_s3_url
from lamina_server.storage.blobs.sigv4 import Credentials, SigV4

ENV = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_SESSION_TOKEN": "T"}


def test_a_location_and_its_redaction() -> None:
    location = parse_s3_url("s3://my-bucket/a/b?endpoint=http://127.0.0.1:8333/", ENV)
    assert (location.bucket, location.prefix, location.endpoint, location.region) == (
        "my-bucket",
        "a/b/",
        "http://127.0.0.1:8333",
        "us-east-1",
    )
    assert location.credentials.session_token == "T"
    assert "SECRET" not in repr(location) and "SECRET" not in location.redacted()
    own = parse_s3_url("s3://my-bucket?access_key_id=K&secret_access_key=S&region=eu-west-1", {})
    assert (own.credentials.access_key_id, own.credentials.session_token) == ("K", None)
    assert own.endpoint == "https://s3.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket", "s3:// URL"),
        ("s3://B", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "segment"),
        ("s3://bucket?colour=red", "unknown parameter 'colour'"),
        ("s3://bucket?endpoint=ftp://x", "endpoint must be"),
        ("s3://bucket?endpoint=http://x/path", "endpoint must be"),
    ],
)
def test_bad_locations_say_why(url: str, message: str) -> None:
    with pytest.raises(BlobStoreUrlError, match=message):
        parse_s3_url(url, ENV)


def test_no_credentials() -> None:
    with pytest.raises(BlobStoreUrlError, match="no credentials"):
        parse_s3_url("s3://bucket", {})


def test_presigned_url_shape() -> None:
    """The credentials and dates of AWS's query-parameter example; the signature is stable."""
    signer = SigV4(
        "https://examplebucket.s3.amazonaws.com",
        "us-east-1",
        "examplebucket",
        Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    )
    now = datetime(2013, 5, 24, tzinfo=timezone.utc)
    url = signer.presign("GET", "test.txt", 86400, now=now)
    assert "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" in url
    assert "X-Amz-Date=20130524T000000Z" in url and "X-Amz-Expires=86400" in url
    assert url == signer.presign("GET", "test.txt", 86400, now=now)
