"""Credentials out of what the SDK shows: signed URLs' tokens and signatures are redacted."""

from __future__ import annotations

import pytest

from lamina._redact import REDACTED, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET http://h/api/v1/blobs/download?token=abc.def -> 416",
            f"GET http://h/api/v1/blobs/download?token={REDACTED} -> 416",
        ),
        (
            "http://h/api/v1/object/multipart/part?path=a&upload_token=t1&part_number=2",
            f"http://h/api/v1/object/multipart/part?path=a&upload_token={REDACTED}&part_number=2",
        ),
        (
            "https://s3.test/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12&X-Amz-Expires=60",
            f"https://s3.test/b/k?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}"
            "&X-Amz-Expires=60",
        ),
        ("https://a.blob.test/c?sv=1&sig=xyz%3D", f"https://a.blob.test/c?sv=1&sig={REDACTED}"),
        ("'http://h/x?token=abc'", f"'http://h/x?token={REDACTED}'"),
        ('{"upload_token": "t-1", "path": "a"}', f'{{"upload_token": "{REDACTED}", "path": "a"}}'),
        ('{"Token":"a\\"b"}', f'{{"Token":"{REDACTED}"}}'),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET http://h/api/v1/organizations/acme?amount=10&after=x -> 404: not found",
        "path=design/signals.txt&session_id=s1",
        "a plain message without a query",
        '{"message": "object not found", "code": "not_found"}',
    ],
)
def test_other_text_is_left_alone(text: str) -> None:
    assert redact(text) == text
