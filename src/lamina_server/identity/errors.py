"""Identity errors. The HTTP layer maps each class to one status and code.

::

    IdentityError
    ├── OrganizationNotFound   no organization of that name (or one the caller may not see)
    ├── OrganizationExists     the name is taken
    ├── UserNotFound           no user of that name or id
    ├── UserExists             the username is taken
    ├── AlreadyMember          the user belongs to the organization already
    ├── NotAMember             the user does not belong to the organization
    └── LastMember             removing the user would leave the organization without members
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
