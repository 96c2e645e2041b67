"""S3 credentials: access key pairs for the server's S3-compatible gateway."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen


@frozen
class S3CredentialData:
    """An S3 credential as listed: never its secret."""

    access_key_id: str
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@frozen
class S3CredentialCreated:
    """A credential just made: the only time its ``secret_access_key`` is shown."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    created_at: datetime | None = None


@frozen
class S3CredentialList:
    results: list[S3CredentialData] = field(factory=list)
