"""Verifying SigV4: the ``Authorization`` header (what boto3, DuckDB and pyarrow send) and
presigned query strings (``X-Amz-Signature``…), and the chunk signatures of a
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body. Pure: no I/O; the secret is looked up by the
caller (:mod:`.admission`) between :func:`parse` and :func:`verify`.

The canonical request is rebuilt from what arrived: the path and query as the client sent
them, decoded and encoded again SigV4's way (so any client's own percent-encoding verifies),
the signed headers' values trimmed, and the payload's hash the client claimed (or
``UNSIGNED-PAYLOAD`` for a presigned URL). A request signed more than
:data:`MAX_SKEW` from now, or a presigned URL past its expiry, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote, unquote_to_bytes

from lamina_server.gateway.s3_errors import S3Error, access_denied, invalid_argument
from lamina_server.storage.blobs.sigv4 import (
    ALGORITHM,
    EMPTY_SHA256,
    UNSIGNED,
    signing_key,
    uri_encode,
)

MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRY = 7 * 24 * 3600
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_SPACES = re.compile(r" +")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Signed:
    """What a request's signature claims: who signed, when, over what, and how."""

    access_key_id: str
    stamp: str  # the request's time, YYYYMMDDTHHMMSSZ
    scope: str  # date/region/service/aws4_request
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)
    payload: str  # the body's hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-… mode
    presigned: bool

    @property
    def date(self) -> str:
        return self.scope.split("/")[0]

    @property
    def region(self) -> str:
        return self.scope.split("/")[1]


def _missing() -> S3Error:
    return access_denied(
        "the request is not signed: sign it with an S3 credential (SigV4; create one with "
        "POST /api/v1/auth/s3-credentials)"
    )


def _malformed(message: str) -> S3Error:
    return S3Error(400, "AuthorizationHeaderMalformed", message)


def _credential(value: str, stamp: str) -> tuple[str, str]:
    """``<access key id>/<date>/<region>/s3/aws4_request`` → (access key id, scope)."""
    parts = value.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request" or not parts[0]:
        raise _malformed(
            f"the credential {value!r} is not '<access key id>/<date>/<region>/s3/aws4_request'"
        )
    if parts[1] != stamp[:8]:
        raise _malformed(f"the credential's date {parts[1]!r} is not the request's {stamp[:8]!r}")
    return parts[0], "/".join(parts[1:])


def _time(stamp: str) -> datetime:
    try:
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        raise access_denied(f"the request's date {stamp!r} is not YYYYMMDDTHHMMSSZ") from None


def parse(headers: dict[str, str], query: Sequence[tuple[str, str]], now: datetime) -> Signed:
    """The signature a request carries, in its ``Authorization`` header or its query;
    ``AccessDenied`` when it carries none, or is too old or expired."""
    authorization = headers.get("authorization")
    params = dict(query)
    if (authorization or "").startswith("AWS ") or "AWSAccessKeyId" in params:
        raise invalid_argument(
            f"only {ALGORITHM} (SigV4) signatures are accepted, not SigV2 (with boto3: "
            "Config(signature_version='s3v4'))"
        )
    if authorization is not None:
        return _from_header(authorization, headers, now)
    if "X-Amz-Signature" in params:
        return _from_query(params, now)
    raise _missing()


def _from_header(authorization: str, headers: dict[str, str], now: datetime) -> Signed:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise invalid_argument(f"only {ALGORITHM} signatures are accepted, not {algorithm!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise _malformed("the Authorization header lacks Credential, SignedHeaders or Signature")
    stamp = headers.get("x-amz-date", "")
    if not stamp:
        raise access_denied("the request lacks its x-amz-date header")
    moment = _time(stamp)
    if abs(now - moment) > MAX_SKEW:
        raise S3Error(
            403,
            "RequestTimeTooSkewed",
            "the request's time is too far from the server's (more than 15 minutes)",
        )
    access_key_id, scope = _credential(fields["Credential"], stamp)
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise invalid_argument("the request lacks its x-amz-content-sha256 header")
    return Signed(
        access_key_id,
        stamp,
        scope,
        tuple(fields["SignedHeaders"].split(";")),
        fields["Signature"],
        payload,
        presigned=False,
    )


def _from_query(params: dict[str, str], now: datetime) -> Signed:
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise invalid_argument(f"only {ALGORITHM} signatures are accepted")
    stamp = params.get("X-Amz-Date", "")
    moment = _time(stamp)
    try:
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise invalid_argument("X-Amz-Expires must be a number of seconds") from None
    if not 0 < expires <= MAX_PRESIGNED_EXPIRY:
        raise invalid_argument(f"X-Amz-Expires must be 1 to {MAX_PRESIGNED_EXPIRY} seconds")
    if now > moment + timedelta(seconds=expires):
        raise access_denied("the presigned URL has expired")
    if moment - now > MAX_SKEW:
        raise access_denied("the presigned URL is not valid yet")
    access_key_id, scope = _credential(params.get("X-Amz-Credential", ""), stamp)
    return Signed(
        access_key_id,
        stamp,
        scope,
        tuple(params.get("X-Amz-SignedHeaders", "").split(";")),
        params["X-Amz-Signature"],
        params.get("X-Amz-Content-Sha256", UNSIGNED),
        presigned=True,
    )


def canonical_query(raw: bytes, *, presigned: bool) -> str:
    """The query as SigV4 signs it: each name and value decoded, encoded again, sorted (a
    presigned URL's own signature left out)."""
    pairs: list[tuple[str, str]] = []
    for item in raw.decode("ascii").split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if presigned and name == "X-Amz-Signature":
            continue
        pairs.append((uri_encode(name), uri_encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_path(raw_path: bytes) -> str:
    """The path as SigV4 signs it for S3: decoded once, encoded again (``/`` kept), byte by
    byte (a path whose escapes are not UTF-8 still has one)."""
    return quote(unquote_to_bytes(raw_path), safe="/-_.~")


def verify(
    signed: Signed,
    secret_access_key: str,
    *,
    method: str,
    raw_path: bytes,
    raw_query: bytes,
    headers: dict[str, str],
) -> bytes:
    """Checks the signature (``SignatureDoesNotMatch`` otherwise); answers the day's signing
    key, with which the body's chunk signatures are checked."""
    lines = []
    for name in signed.signed_headers:
        value = headers.get(name)
        if value is None:
            raise access_denied(f"the signed header {name!r} is not in the request")
        lines.append(f"{name}:{_SPACES.sub(' ', value.strip())}\n")
    canonical = "\n".join(
        [
            method,
            canonical_path(raw_path),
            canonical_query(raw_query, presigned=signed.presigned),
            "".join(lines),
            ";".join(signed.signed_headers),
            signed.payload,
        ]
    )
    to_sign = "\n".join(
        [ALGORITHM, signed.stamp, signed.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(secret_access_key, signed.date, signed.region)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise S3Error(
            403,
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided: "
            "check your secret access key and signing method",
        )
    return key


def is_sha256(payload: str) -> bool:
    return _HEX_SHA256.fullmatch(payload) is not None


class ChunkSignatures:
    """The chain of an aws-chunked body's signatures: each chunk's is computed over the one
    before it (the request's own signature first) and the chunk's SHA-256."""

    def __init__(self, key: bytes, signed: Signed) -> None:
        self._key = key
        self._stamp = signed.stamp
        self._scope = signed.scope
        self._previous = signed.signature

    def _sign(self, kind: str, digest: str, *, empty: bool) -> str:
        parts = [kind, self._stamp, self._scope, self._previous]
        if empty:
            parts.append(EMPTY_SHA256)
        parts.append(digest)
        return hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    def check_chunk(self, digest: str, signature: str) -> None:
        """The next chunk's signature, given its data's hex SHA-256."""
        expected = self._sign("AWS4-HMAC-SHA256-PAYLOAD", digest, empty=True)
        self._check(expected, signature)

    def check_trailer(self, trailer: bytes, signature: str) -> None:
        """The trailer's signature, given its canonical lines (``name:value\\n`` each)."""
        expected = self._sign(
            "AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(trailer).hexdigest(), empty=False
        )
        self._check(expected, signature)

    def _check(self, expected: str, signature: str) -> None:
        if not hmac.compare_digest(expected, signature):
            raise S3Error(
                403, "SignatureDoesNotMatch", "a chunk signature of the body does not match"
            )
        self._previous = expected
