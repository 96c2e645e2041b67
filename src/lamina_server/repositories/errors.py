"""Repository errors. The HTTP layer maps each class to one status and code.

::

    RepositoryError
    ├── RepositoryNotFound     no live repository of that name in the organization
    └── RepositoryExists       a live repository already has that name
"""

from __future__ import annotations


class RepositoryError(Exception):
    """Root of the repositories domain's errors; ``str()`` is a human message."""


class RepositoryNotFound(RepositoryError):
    def __init__(self, organization: str, name: str) -> None:
        super().__init__(f"repository {organization}/{name} not found")
        self.organization = organization
        self.name = name


class RepositoryExists(RepositoryError):
    def __init__(self, organization: str, name: str) -> None:
        super().__init__(f"repository {organization}/{name} already exists")
        self.organization = organization
        self.name = name
