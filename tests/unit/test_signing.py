"""The URL signer: round trip, tampering, expiry, kinds and keys."""

from __future__ import annotations

import base64
import json
import time

import pytest

from lamina_server.api.signing import TokenError, UrlSigner

KEY = b"k" * 32


def _payload(token: str) -> dict[str, object]:
    encoded = token.split(".")[0]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=="))
    return decoded


def test_round_trip_returns_claims_kind_and_expiry() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {"r": "repo", "s": "sess", "p": "a/b.txt", "n": 3}, ttl=60)
    claims = signer.verify("upload", token)
    assert claims["r"] == "repo"
    assert claims["p"] == "a/b.txt"
    assert claims["n"] == 3
    assert claims["k"] == "upload"
    assert time.time() + 55 < claims["x"] <= time.time() + 60


def test_token_is_url_safe() -> None:
    token = UrlSigner(KEY).sign("upload", {"p": "ü/?&=+ /é"}, ttl=60)
    assert all(c.isalnum() or c in "-_." for c in token)


def test_tampered_payload_is_rejected() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {"p": "a.txt"}, ttl=60)
    body = _payload(token)
    body["p"] = "b.txt"
    forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    forged = f"{forged_payload}.{token.split('.')[1]}"
    with pytest.raises(TokenError, match="invalid signature"):
        signer.verify("upload", forged)


def test_tampered_signature_is_rejected() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {"p": "a.txt"}, ttl=60)
    last = token[-1]
    forged = token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(TokenError, match="invalid signature"):
        signer.verify("upload", forged)


def test_token_from_another_key_is_rejected() -> None:
    token = UrlSigner(b"x" * 32).sign("upload", {"p": "a.txt"}, ttl=60)
    with pytest.raises(TokenError, match="invalid signature"):
        UrlSigner(KEY).verify("upload", token)


def test_expired_token_is_rejected() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {"p": "a.txt"}, ttl=60, now=time.time() - 120)
    with pytest.raises(TokenError, match="expired"):
        signer.verify("upload", token)


def test_expiry_is_checked_against_now() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {}, ttl=10, now=1000.0)
    assert signer.verify("upload", token, now=1009.0)["x"] == 1010
    with pytest.raises(TokenError, match="expired"):
        signer.verify("upload", token, now=1010.0)


def test_kind_is_part_of_the_scope() -> None:
    signer = UrlSigner(KEY)
    token = signer.sign("upload", {"p": "a.txt"}, ttl=60)
    with pytest.raises(TokenError, match="another purpose"):
        signer.verify("download", token)


@pytest.mark.parametrize(
    "token",
    ["", "nodot", ".sig", "payload.", "a.b.c", "not base64!.sig", "ünïcode.sig"],
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(TokenError):
        UrlSigner(KEY).verify("upload", token)


def test_validly_signed_garbage_payload_is_malformed() -> None:
    signer = UrlSigner(KEY)
    payload = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    token = f"{payload}.{signer._mac(payload)}"
    with pytest.raises(TokenError, match="malformed"):
        signer.verify("upload", token)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        UrlSigner(b"short")
