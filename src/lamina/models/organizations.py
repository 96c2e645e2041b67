"""Organizations and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from attrs import field, frozen

T = TypeVar("T")


@frozen
class ResultList(Generic[T]):
    """An unpaginated list response: ``{"results": [...]}``."""

    results: list[T] = field(factory=list)


@frozen
class OrganizationData:
    """An organization as the API returns it (``GET /organizations/{name}``)."""

    id: str
    name: str
    display_name: str = ""
    created_at: datetime | None = None
    status: str | None = None
    notes: str | None = None


@frozen
class Membership:
    """One member of an organization (``GET /organizations/{name}/members``)."""

    organization_id: str
    user_id: str
    username: str = ""
    full_name: str = ""
    email: str = ""
    joined_at: datetime | None = None
