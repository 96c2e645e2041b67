"""AWS Signature Version 4 for the S3 calls ``obstore`` does not make: presigned URLs that
carry query parameters (a multipart part's ``partNumber``/``uploadId``, a download's
``response-content-type``) and the multipart control requests (create, list parts, complete,
abort). Path-style addressing (``<endpoint>/<bucket>/<key>``), which every S3-compatible store
serves. Pure: no I/O. Its pieces (:func:`uri_encode`, :func:`signing_key`) also serve the
gateway's verification (:mod:`lamina_server.gateway.signing`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """SigV4's URI encoding: every byte of the UTF-8 but the unreserved characters (and, in a
    path, ``/``) percent-encoded."""
    return quote(value, safe="/-_.~" if keep_slash else "-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str = "s3") -> bytes:
    """The key of one day (``YYYYMMDD``), region and service that signs requests."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


@dataclass(frozen=True)
class Credentials:
    """An access key; ``repr`` never shows the secret or the session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SigV4:
    """Signs requests to one bucket at ``endpoint`` (scheme, host and port) in ``region``."""

    endpoint: str
    region: str
    bucket: str
    credentials: Credentials

    def url(self, key: str) -> str:
        return f"{self.endpoint.rstrip('/')}/{uri_encode(self.bucket)}/{uri_encode(key, keep_slash=True)}"

    def _canonical(
        self,
        method: str,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        payload: str,
    ) -> tuple[str, str]:
        """The canonical request's hash and the signed header names."""
        path = urlsplit(self.url(key)).path
        pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query.items())
        names = sorted(name.lower() for name in headers)
        lowered = {name.lower(): value.strip() for name, value in headers.items()}
        canonical = "\n".join(
            [
                method,
                path,
                "&".join(f"{k}={v}" for k, v in pairs),
                "".join(f"{name}:{lowered[name]}\n" for name in names),
                ";".join(names),
                payload,
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest(), ";".join(names)

    def _signature(self, stamp: str, scope: str, canonical_hash: str) -> str:
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{canonical_hash}"
        key = signing_key(self.credentials.secret_access_key, stamp[:8], self.region)
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def _scope(self, now: datetime) -> tuple[str, str]:
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return stamp, f"{stamp[:8]}/{self.region}/s3/aws4_request"

    def _host(self) -> str:
        return urlsplit(self.endpoint).netloc

    def presign(
        self,
        method: str,
        key: str,
        expires: int,
        query: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A URL that lets its holder make this one request for ``expires`` seconds; the
        request must carry ``headers`` (signed with it) as they are."""
        stamp, scope = self._scope(now or datetime.now(timezone.utc))
        signed = {"host": self._host(), **{k.lower(): v for k, v in (headers or {}).items()}}
        params = dict(query or {})
        params.update(
            {
                "X-Amz-Algorithm": ALGORITHM,
                "X-Amz-Credential": f"{self.credentials.access_key_id}/{scope}",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": str(expires),
                "X-Amz-SignedHeaders": ";".join(sorted(signed)),
            }
        )
        if self.credentials.session_token:
            params["X-Amz-Security-Token"] = self.credentials.session_token
        digest, _ = self._canonical(method, key, params, signed, UNSIGNED)
        params["X-Amz-Signature"] = self._signature(stamp, scope, digest)
        encoded = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in params.items())
        return f"{self.url(key)}?{encoded}"

    def headers(
        self,
        method: str,
        key: str,
        query: Mapping[str, str],
        body: bytes = b"",
        *,
        extra: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """The headers that authorize a request with ``body`` (Authorization and friends),
        with ``extra`` headers signed too."""
        stamp, scope = self._scope(now or datetime.now(timezone.utc))
        headers = {
            **{name.lower(): value for name, value in (extra or {}).items()},
            "host": self._host(),
            "x-amz-date": stamp,
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        }
        if self.credentials.session_token:
            headers["x-amz-security-token"] = self.credentials.session_token
        digest, names = self._canonical(
            method, key, query, headers, headers["x-amz-content-sha256"]
        )
        signature = self._signature(stamp, scope, digest)
        headers["authorization"] = (
            f"{ALGORITHM} Credential={self.credentials.access_key_id}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        del headers["host"]  # the HTTP client sends it
        return headers
