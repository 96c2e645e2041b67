"""Identity errors. The HTTP layer maps each class to one status and code.

::

    IdentityError
    ├── OrganizationNotFound   no organization of that name (or one the caller may not see)
    ├── OrganizationExists     the name is taken
    ├── UserNotFound           no user of that name or id
    ├── UserExists             the username is taken
    ├── AlreadyMember          the user belongs to the organization already
    ├── NotAMember             the user does not belong to the organization
    ├── LastMember             removing the user would leave the organization without members
    ├── LastAdmin              removing the user would leave the organization without an admin
    ├── AgentNotFound          no agent of that name in the organization
    ├── RoleNotFound           no role of that name in the organization
    ├── AgentExists            the agent name is taken in the organization
    ├── RoleExists             the role name is taken in the organization
    ├── KeyNotFound            no API key of that id for that principal
    ├── InvitationNotFound     no invitation of that id (addressed to the caller)
    ├── InvitationExists       a pending invitation for that address exists already
    ├── InvitationGone         the invitation was revoked or has expired
    └── InvitationNotPending   the invitation was already answered or revoked
"""

from __future__ import annotations


class IdentityError(Exception):
    """Root of the identity domain's errors; ``str()`` is a human message."""


class OrganizationNotFound(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"organization {name!r} not found")
        self.name = name


class OrganizationExists(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"organization {name!r} already exists")
        self.name = name


class UserNotFound(IdentityError):
    def __init__(self, who: str) -> None:
        super().__init__(f"user {who!r} not found")
        self.who = who


class UserExists(IdentityError):
    def __init__(self, username: str) -> None:
        super().__init__(f"user {username!r} already exists")
        self.username = username


class AlreadyMember(IdentityError):
    def __init__(self, who: str, organization: str) -> None:
        super().__init__(f"user {who!r} is already a member of {organization!r}")


class NotAMember(IdentityError):
    def __init__(self, who: str, organization: str) -> None:
        super().__init__(f"user {who!r} is not a member of {organization!r}")


class LastMember(IdentityError):
    def __init__(self, organization: str) -> None:
        super().__init__(f"cannot remove the last member of {organization!r}")


class LastAdmin(IdentityError):
    def __init__(self, organization: str) -> None:
        super().__init__(f"cannot remove the last admin of {organization!r}")


class AgentNotFound(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"agent {name!r} not found")


class RoleNotFound(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"role {name!r} not found")


class AgentExists(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"agent {name!r} already exists")


class RoleExists(IdentityError):
    def __init__(self, name: str) -> None:
        super().__init__(f"role {name!r} already exists")


class KeyNotFound(IdentityError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} not found")


class InvitationNotFound(IdentityError):
    def __init__(self, invitation_id: str) -> None:
        super().__init__(f"invitation {invitation_id!r} not found")


class InvitationExists(IdentityError):
    def __init__(self, email: str, organization: str) -> None:
        super().__init__(f"{email!r} already has a pending invitation to {organization!r}")


class InvitationGone(IdentityError):
    def __init__(self, invitation_id: str, status: str) -> None:
        super().__init__(f"invitation {invitation_id!r} is {status}")


class InvitationNotPending(IdentityError):
    def __init__(self, invitation_id: str, status: str) -> None:
        super().__init__(f"invitation {invitation_id!r} is {status}, not pending")
