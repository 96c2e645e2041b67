"""Repositories: which repositories an organization has, their settings and soft deletion.

The versioning engine knows a repository only by id; this domain owns its name and settings.
"""

from lamina_server.repositories.directory import (
    DEFAULT_RETENTION_DAYS,
    Repositories,
    RepositoryRecord,
)
from lamina_server.repositories.errors import (
    RepositoryError,
    RepositoryExists,
    RepositoryNotFound,
)

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "Repositories",
    "RepositoryError",
    "RepositoryExists",
    "RepositoryNotFound",
    "RepositoryRecord",
]
