"""Secrets of repositories and agents (values are only in ``SecretValue``)."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen


@frozen
class SecretData:
    """A secret as listed: its key and who set it, never its value."""

    key: str
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@frozen
class SecretValue:
    """``GET .../secrets/{key}``: the decrypted value."""

    key: str
    value: str
