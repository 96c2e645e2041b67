"""HMAC-SHA256 signed, expiring, scoped tokens: upload tokens and presigned blob URLs.

A token is ``<payload>.<signature>``: the payload is base64url of compact JSON holding the
token's kind (``k``), its expiry in unix seconds (``x``) and the caller's claims (repository,
session, path, blob address...); the signature is base64url of HMAC-SHA256 over the encoded
payload. Verification checks the signature first (constant-time), then the kind, then the
expiry; scope checks (does the token's repository/session/path match the request?) are the
caller's, on the returned claims.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

MIN_KEY_BYTES = 16
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps builds one a call


class TokenError(Exception):
    """A token that is malformed, forged, expired or meant for another purpose.

    ``str(error)`` is a predicate to append to the token's name ("upload token has expired").
    """


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    """Signs and verifies tokens with one secret key (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"signing key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64encode(hmac.digest(self._key, payload.encode("ascii"), hashlib.sha256))

    def sign(
        self,
        kind: str,
        claims: Mapping[str, str | int],
        *,
        ttl: float,
        now: float | None = None,
    ) -> str:
        """A token of ``kind`` carrying ``claims``, valid for ``ttl`` seconds from ``now``."""
        issued = time.time() if now is None else now
        body = {"k": kind, "x": int(issued + ttl), **claims}
        payload = _b64encode(_COMPACT.encode(body).encode("ascii"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, kind: str, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a valid ``kind`` token; :class:`TokenError` otherwise."""
        payload, dot, signature = token.partition(".")
        if not (dot and payload and signature and token.isascii()):
            raise TokenError("is malformed")
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise TokenError("has an invalid signature")
        try:
            body = json.loads(_b64decode(payload).decode("ascii"))
        except (binascii.Error, ValueError):
            raise TokenError("is malformed") from None
        if not isinstance(body, dict) or not isinstance(body.get("x"), int):
            raise TokenError("is malformed")
        if body.get("k") != kind:
            raise TokenError("was issued for another purpose")
        if body["x"] <= (time.time() if now is None else now):
            raise TokenError("has expired")
        return body
