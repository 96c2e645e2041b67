"""Identity: users, organizations, memberships, API keys, and the repository directory."""

from lamina_server.identity.principal import Principal
from lamina_server.identity.repositories import Repositories, RepositoryRecord
from lamina_server.identity.service import Identity, MembershipRecord, NewUser, OrganizationRecord

__all__ = [
    "Identity",
    "MembershipRecord",
    "NewUser",
    "OrganizationRecord",
    "Principal",
    "Repositories",
    "RepositoryRecord",
]
