"""Users, and who the caller is (``GET /auth/me``)."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen

from lamina._errors import SerializationError


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
class CallerPrincipal:
    """Who is calling, of any principal type (``"user"``, ``"agent"`` or ``"role"``); an
    agent's or role's ``organization_id`` is the organization it belongs to. A Lamina
    extension of ``/auth/me``."""

    type: str
    id: str
    name: str = ""
    organization_id: str | None = None


@frozen
class CurrentUser:
    """``GET /auth/me``: the caller and their organizations. ``user`` is ``None`` when the
    caller is an agent or a role; ``principal`` says who it is then (``None`` from a server
    that does not send it)."""

    user: UserData | None = None
    organizations: list[OrganizationSummary] = field(factory=list)
    has_password: bool = False
    principal: CallerPrincipal | None = None

    @property
    def caller(self) -> CallerPrincipal:
        """The caller as a principal: ``principal``, else the user's."""
        if self.principal is not None:
            return self.principal
        if self.user is None:
            raise SerializationError("/auth/me named neither a user nor a principal")
        return CallerPrincipal(type="user", id=self.user.id, name=self.user.username)
