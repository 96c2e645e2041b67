"""Users, and who the caller is (``GET /auth/me``)."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen


@frozen
class UserData:
    """A user account."""

    id: str
    username: str
    email: str = ""
    full_name: str = ""
    company: str = ""
    bio: str = ""
    source: str = ""
    status: str = ""
    created_at: datetime | None = None


@frozen
class OrganizationSummary:
    """An organization the caller belongs to, as ``/auth/me`` lists it."""

    id: str
    name: str
    display_name: str = ""


@frozen
class CurrentUser:
    """``GET /auth/me``: the calling user and their organizations."""

    user: UserData
    organizations: list[OrganizationSummary] = field(factory=list)
    has_password: bool = False
