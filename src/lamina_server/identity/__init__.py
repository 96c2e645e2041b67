"""Identity: users, organizations, memberships and API keys."""

from lamina_server.identity.errors import (
    AlreadyMember,
    IdentityError,
    LastMember,
    NotAMember,
    OrganizationExists,
    OrganizationNotFound,
    UserExists,
    UserNotFound,
)
from lamina_server.identity.service import Identity, MembershipRecord, NewUser, OrganizationRecord

__all__ = [
    "AlreadyMember",
    "Identity",
    "IdentityError",
    "LastMember",
    "MembershipRecord",
    "NewUser",
    "NotAMember",
    "OrganizationExists",
    "OrganizationNotFound",
    "OrganizationRecord",
    "UserExists",
    "UserNotFound",
]
