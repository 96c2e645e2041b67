"""Lamina: versioned object storage with transactional sessions.

Blocking::

    import lamina

    repo = lamina.repository("acme/data")          # the default client, from env/config file
    for entry in repo.objects.list(prefix="raw/"):
        print(entry.path)

Async: ``async with lamina.AsyncClient() as client: ...``. Every error the SDK raises is a
:class:`LaminaError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina import _module_api
from lamina._async._client import AsyncClient
from lamina._async._object_reader import AsyncObjectReader
from lamina._async._pager import AsyncPager
from lamina._async.resources import (
    AsyncCommit,
    AsyncCommits,
    AsyncMembers,
    AsyncOrganization,
    AsyncOrganizations,
    AsyncReadOnlyObjects,
    AsyncRepositories,
    AsyncRepository,
    AsyncSession,
    AsyncSessionObjects,
)
from lamina._errors import (
    APIError,
    ApprovalTimeoutError,
    AuthenticationError,
    BadRequestError,
    CommandError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LaminaError,
    LockedError,
    NotFoundError,
    PreconditionFailedError,
    RangeNotSatisfiableError,
    RateLimitError,
    SandboxError,
    SerializationError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
)
from lamina._module_api import configure, organization, repository
from lamina._sync._client import Client
from lamina._sync._object_reader import ObjectReader
from lamina._sync._pager import Pager
from lamina._sync.resources import (
    Commit,
    Commits,
    Members,
    Organization,
    Organizations,
    ReadOnlyObjects,
    Repositories,
    Repository,
    Session,
    SessionObjects,
)
from lamina._types import NOT_GIVEN, NotGiven, Page
from lamina._version import __version__
from lamina.models import (
    CommitData,
    CommitResult,
    CopyObjectResult,
    Entry,
    EntryRecord,
    ListingEntry,
    Membership,
    ObjectMetadata,
    OrganizationData,
    PutObjectResult,
    RepositoryData,
    SourceMetadata,
    TransferProgress,
)

if TYPE_CHECKING:
    #: The organizations of the default client's caller (a live attribute).
    organizations: Organizations
else:

    def __getattr__(name: str) -> object:
        if name == "organizations":
            return _module_api.organizations()
        raise AttributeError(f"module 'lamina' has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*globals(), "organizations"])


# ``organizations`` is left out on purpose: a star-import would freeze the live attribute.
__all__ = [
    "NOT_GIVEN",
    "APIError",
    "ApprovalTimeoutError",
    "AsyncClient",
    "AsyncCommit",
    "AsyncCommits",
    "AsyncMembers",
    "AsyncObjectReader",
    "AsyncOrganization",
    "AsyncOrganizations",
    "AsyncPager",
    "AsyncReadOnlyObjects",
    "AsyncRepositories",
    "AsyncRepository",
    "AsyncSession",
    "AsyncSessionObjects",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "CommandError",
    "Commit",
    "CommitData",
    "CommitResult",
    "Commits",
    "ConfigurationError",
    "ConflictError",
    "CopyObjectResult",
    "Entry",
    "EntryRecord",
    "ForbiddenError",
    "GoneError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LaminaError",
    "ListingEntry",
    "LockedError",
    "Members",
    "Membership",
    "NotFoundError",
    "NotGiven",
    "ObjectMetadata",
    "ObjectReader",
    "Organization",
    "OrganizationData",
    "Organizations",
    "Page",
    "Pager",
    "PreconditionFailedError",
    "PutObjectResult",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "ReadOnlyObjects",
    "Repositories",
    "Repository",
    "RepositoryData",
    "SandboxError",
    "SerializationError",
    "ServerError",
    "Session",
    "SessionObjects",
    "SourceMetadata",
    "TransferProgress",
    "TransportError",
    "UnprocessableEntityError",
    "__version__",
    "configure",
    "organization",
    "repository",
]
