"""An S3 connector's source: where it is (:class:`S3Settings`, parsed from a connector's
``source_uri`` and ``config``), and reading it through ``obstore`` (:class:`S3Source`):
a connection check, a listing, and conditional streaming reads.

``config`` keys: ``endpoint`` (``http(s)://host[:port]`` of any S3-compatible store; AWS's
regional endpoint when left out), ``region`` (``us-east-1``), ``access_key_id`` and
``secret_access_key`` (both, or neither for a public bucket read unsigned), ``session_token``;
``etags``: ``md5`` (the default: a single-part object's ETag is its MD5, as S3 defines it for
objects not encrypted with SSE-KMS or SSE-C, and the import takes it as the object's ETag
without hashing the bytes again) or ``opaque`` (every object's bytes are hashed); and, when the
request has no ``source_uri`` (the cerebral-sdk sends none), ``bucket`` and ``prefix``. The
server's own credentials are never used for a connector.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from lamina_server.imports.errors import ConnectionFailed, ConnectorInvalid, SourceChanged

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

READ_CHUNK = 1024 * 1024  # an object is streamed in chunks of at least this size
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KNOWN = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token", "etags")
_ETAGS = ("md5", "opaque")
_MD5 = re.compile(r"[0-9a-f]{32}")
_LOCATION = ("bucket", "prefix")
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (BaseError, OSError)


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str
    region: str
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    etags: str = "md5"  # or "opaque": the source's ETags are not MD5s

    @property
    def source_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def sealed_form(self) -> dict[str, str]:
        """What is stored (sealed) for a connector: every field."""
        return asdict(self)

    def __repr__(self) -> str:  # never a secret in a log line
        return f"S3Settings({self.source_uri!r}, endpoint={self.endpoint!r})"


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConnectorInvalid(f"config.{key} must be a string")
    return value.strip()


def _folder(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise ConnectorInvalid(f"prefix {prefix!r} has an empty, '.' or '..' segment")
    return f"{prefix}/" if prefix else ""


def parse_s3(source_uri: str | None, config: Mapping[str, Any]) -> S3Settings:
    """The settings a create (or ``:test``) request names; :class:`ConnectorInvalid` saying
    what is wrong otherwise."""
    unknown = sorted(set(config) - set(_KNOWN) - set(_LOCATION))
    if unknown:
        known = ", ".join((*_KNOWN, *_LOCATION))
        raise ConnectorInvalid(f"config: unknown key {unknown[0]!r} for an s3 connector ({known})")
    if source_uri:
        parts = urlsplit(source_uri)
        if parts.scheme != "s3" or parts.query or parts.fragment:
            raise ConnectorInvalid(
                f"source_uri must be s3://bucket[/prefix] for an s3 connector, got {source_uri!r}"
            )
        bucket, prefix = parts.netloc, parts.path
        for key in _LOCATION:
            named = _text(config, key)
            if named and named.strip("/") != (bucket if key == "bucket" else prefix.strip("/")):
                raise ConnectorInvalid(f"config.{key} {named!r} contradicts source_uri")
    else:
        bucket, prefix = _text(config, "bucket"), _text(config, "prefix")
        if not bucket:
            raise ConnectorInvalid(
                "source_uri is required (s3://bucket[/prefix]), or config.bucket"
            )
    if not _BUCKET.fullmatch(bucket):
        raise ConnectorInvalid(f"{bucket!r} is not a valid S3 bucket name")
    region = _text(config, "region") or "us-east-1"
    endpoint = (_text(config, "endpoint") or f"https://s3.{region}.amazonaws.com").rstrip("/")
    where = urlsplit(endpoint)
    if where.scheme not in ("http", "https") or not where.netloc or where.path:
        raise ConnectorInvalid("config.endpoint must be http(s)://host[:port], without a path")
    key_id, secret = _text(config, "access_key_id"), _text(config, "secret_access_key")
    if bool(key_id) != bool(secret):
        raise ConnectorInvalid(
            "config: give both access_key_id and secret_access_key (or neither, for a public "
            "bucket)"
        )
    etags = _text(config, "etags") or "md5"
    if etags not in _ETAGS:
        raise ConnectorInvalid(f"config.etags must be md5 or opaque, got {etags!r}")
    return S3Settings(
        bucket=bucket,
        prefix=_folder(prefix),
        endpoint=endpoint,
        region=region,
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=_text(config, "session_token"),
        etags=etags,
    )


def settings_from(sealed: Mapping[str, str]) -> S3Settings:
    return S3Settings(**sealed)


def cause(exc: Exception) -> str:
    """What went wrong, in one line (obstore appends a multi-line debug dump)."""
    kind = {
        PermissionDeniedError: "access denied",
        UnauthenticatedError: "credentials refused",
        NotFoundError: "not found",
        FileNotFoundError: "not found",
    }.get(type(exc), type(exc).__name__)
    first = str(exc).split("\n", 1)[0].strip()
    return f"{kind}: {first[:400]}" if first else kind


@dataclass(frozen=True, slots=True)
class SourceObject:
    key: str  # relative to the connector's prefix
    size: int
    etag: str  # the source's ETag, unquoted


class S3Source:
    """One connector's bucket and prefix: keys are relative to the prefix."""

    def __init__(self, settings: S3Settings, *, timeout: float = 60.0) -> None:
        self.settings = settings
        config: S3Config = {
            "endpoint": settings.endpoint,
            "region": settings.region,
            "virtual_hosted_style_request": False,
        }
        if settings.access_key_id:
            config["access_key_id"] = settings.access_key_id
            config["secret_access_key"] = settings.secret_access_key
            if settings.session_token:
                config["session_token"] = settings.session_token
        else:
            config["skip_signature"] = True
        client: ClientConfig = {
            "allow_http": settings.endpoint.startswith("http://"),
            "connect_timeout": timedelta(seconds=10),
            "timeout": timedelta(seconds=timeout),
        }
        retry: RetryConfig = {
            "max_retries": 2,
            "retry_timeout": timedelta(seconds=20),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        }
        self._store = S3Store(
            settings.bucket,
            prefix=settings.prefix or None,
            config=config,
            client_options=client,
            retry_config=retry,
        )

    def where(self, key: str = "") -> str:
        return f"{self.settings.source_uri}{key}"

    def md5_of(self, item: SourceObject) -> str | None:
        """The object's MD5 as its ETag gives it (a single-part object's, on a source whose
        ETags are MD5s), or None: its bytes must be hashed."""
        if self.settings.etags == "md5" and _MD5.fullmatch(item.etag):
            return item.etag
        return None

    async def check(self) -> None:
        """A real round trip: lists at most one key under the prefix (the bucket must exist
        and the credentials may list it). :class:`ConnectionFailed` naming the cause."""
        try:
            stream = obstore.list(self._store, None, chunk_size=1)
            await anext(aiter(stream), None)
        except _FAILED as exc:
            raise ConnectionFailed(
                f"{self.where()} at {self.settings.endpoint}: {cause(exc)}"
            ) from None

    async def objects(self, prefix: str) -> AsyncIterator[SourceObject]:
        """Every object under the folder ``prefix`` (relative to the connector's), in
        batches as the store lists them. :class:`ConnectionFailed` on a failure."""
        try:
            async for batch in obstore.list(self._store, prefix or None, chunk_size=1000):
                for meta in batch:
                    yield SourceObject(
                        meta["path"], meta["size"], str(meta["e_tag"] or "").strip('"')
                    )
        except _FAILED as exc:
            raise ConnectionFailed(f"listing {self.where(prefix)} failed: {cause(exc)}") from None

    async def read(self, item: SourceObject) -> AsyncIterator[bytes]:
        """The object's bytes, streamed, on the condition that it is still the version
        listed (``If-Match`` its ETag): :class:`SourceChanged` if it changed or went away."""
        options: dict[str, Any] = {"if_match": item.etag} if item.etag else {}
        try:
            result = await obstore.get_async(self._store, item.key, options=options)  # type: ignore[arg-type]
            if result.meta["size"] != item.size:
                raise SourceChanged(
                    f"{self.where(item.key)} changed while it was imported (it was "
                    f"{item.size} bytes when listed, {result.meta['size']} now)"
                )
            async for chunk in result.stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)
        except PreconditionError:
            raise SourceChanged(
                f"{self.where(item.key)} changed while it was imported (its ETag is no longer "
                f"{item.etag})"
            ) from None
        except _MISSING:
            raise SourceChanged(
                f"{self.where(item.key)} disappeared while it was imported"
            ) from None
        except _FAILED as exc:
            raise ConnectionFailed(f"reading {self.where(item.key)} failed: {cause(exc)}") from None
