"""``--blob-store s3://BUCKET[/prefix]?endpoint=…&region=…``: where an S3 blob store is.

Query parameters: ``endpoint`` (scheme, host and port of an S3-compatible store; AWS's
regional endpoint when left out), ``region`` (``us-east-1``), ``access_key_id`` and
``secret_access_key`` (else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, with
``AWS_SESSION_TOKEN``). A location's ``repr`` and :meth:`S3Location.redacted` never show a
secret. Pure: reads only the environment mapping it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from lamina_server.storage.blobs.base import BlobError
from lamina_server.storage.blobs.sigv4 import Credentials

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KNOWN = {"endpoint", "region", "access_key_id", "secret_access_key"}


class BlobStoreUrlError(BlobError, ValueError):
    """A ``--blob-store`` value that names no usable store; the message says why."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str
    region: str
    credentials: Credentials

    def redacted(self) -> str:
        """The location as a URL fit for logs: no credentials."""
        return f"s3://{self.bucket}/{self.prefix}?endpoint={self.endpoint}&region={self.region}"


def parse_s3_url(url: str, environ: Mapping[str, str]) -> S3Location:
    """The location ``url`` names (:class:`BlobStoreUrlError` when it names none)."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise BlobStoreUrlError(f"blob store must be an s3:// URL, got scheme {parts.scheme!r}")
    if not _BUCKET.fullmatch(parts.netloc):
        raise BlobStoreUrlError(f"blob store: {parts.netloc!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise BlobStoreUrlError(f"blob store: prefix {prefix!r} has an empty, . or .. segment")
    try:
        query = dict(
            parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        )
    except ValueError:
        raise BlobStoreUrlError("blob store: the query string is malformed") from None
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        raise BlobStoreUrlError(
            f"blob store: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})"
        )
    region = query.get("region") or environ.get("AWS_REGION") or "us-east-1"
    endpoint = (query.get("endpoint") or f"https://s3.{region}.amazonaws.com").rstrip("/")
    scheme = urlsplit(endpoint)
    if scheme.scheme not in ("http", "https") or not scheme.netloc or scheme.path:
        raise BlobStoreUrlError(
            "blob store: endpoint must be http(s)://host[:port], without a path"
        )
    from_query = bool(query.get("access_key_id"))
    key_id = query.get("access_key_id") if from_query else environ.get("AWS_ACCESS_KEY_ID")
    secret = query.get("secret_access_key") or environ.get("AWS_SECRET_ACCESS_KEY")
    token = None if from_query else environ.get("AWS_SESSION_TOKEN") or None
    if not key_id or not secret:
        raise BlobStoreUrlError(
            "blob store: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "the access_key_id and secret_access_key parameters)"
        )
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=region,
        credentials=Credentials(key_id, secret, token),
    )
