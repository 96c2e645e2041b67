"""API keys of users, roles and agents."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen

from lamina._types import Pagination


@frozen
class APIKeyData:
    """An API key as listed: never the token, only its last characters (``token_hint``)."""

    id: str
    name: str
    description: str = ""
    token_hint: str = ""
    user_id: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@frozen
class APIKeyCreated:
    """The answer to creating a key: the only time the full ``token`` is shown."""

    token: str
    id: str
    name: str
    description: str = ""


@frozen
class APIKeyList:
    """A page of keys: the contract's ``{"results": [...]}``, with the list envelope's
    ``pagination`` when the server pages (the reference server does)."""

    results: list[APIKeyData] = field(factory=list)
    pagination: Pagination | None = None
