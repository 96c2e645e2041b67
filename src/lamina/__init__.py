"""Lamina: versioned object storage with transactional sessions and sandboxed compute.

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
from lamina._async._exec import AsyncProcess, AsyncProcessOutput, AsyncProcessStdin, AsyncTerminal
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
    AsyncSandbox,
    AsyncSandboxes,
    AsyncSandboxTrigger,
    AsyncSandboxTriggerRuns,
    AsyncSandboxTriggers,
    AsyncSession,
    AsyncSessionObjects,
    AsyncShell,
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
from lamina._sync._exec import Process, ProcessOutput, ProcessStdin, Terminal
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
    Sandbox,
    Sandboxes,
    SandboxTrigger,
    SandboxTriggerRuns,
    SandboxTriggers,
    Session,
    SessionObjects,
    Shell,
)
from lamina._types import NOT_GIVEN, NotGiven, Page
from lamina._version import __version__
from lamina.models import (
    PIPE,
    CommitData,
    CommitResult,
    CopyObjectResult,
    Entry,
    EntryRecord,
    ListingEntry,
    Membership,
    ObjectMetadata,
    OrganizationData,
    OutputEvent,
    OutputStream,
    PutObjectResult,
    RepositoryData,
    RunAs,
    RunResult,
    SandboxData,
    SandboxOutcome,
    SandboxStatus,
    SandboxTriggerCondition,
    SandboxTriggerConfig,
    SandboxTriggerData,
    SandboxTriggerRun,
    SourceMetadata,
    TerminalExit,
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
    "PIPE",
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
    "AsyncProcess",
    "AsyncProcessOutput",
    "AsyncProcessStdin",
    "AsyncReadOnlyObjects",
    "AsyncRepositories",
    "AsyncRepository",
    "AsyncSandbox",
    "AsyncSandboxTrigger",
    "AsyncSandboxTriggerRuns",
    "AsyncSandboxTriggers",
    "AsyncSandboxes",
    "AsyncSession",
    "AsyncSessionObjects",
    "AsyncShell",
    "AsyncTerminal",
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
    "OutputEvent",
    "OutputStream",
    "Page",
    "Pager",
    "PreconditionFailedError",
    "Process",
    "ProcessOutput",
    "ProcessStdin",
    "PutObjectResult",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "ReadOnlyObjects",
    "Repositories",
    "Repository",
    "RepositoryData",
    "RunAs",
    "RunResult",
    "Sandbox",
    "SandboxData",
    "SandboxError",
    "SandboxOutcome",
    "SandboxStatus",
    "SandboxTrigger",
    "SandboxTriggerCondition",
    "SandboxTriggerConfig",
    "SandboxTriggerData",
    "SandboxTriggerRun",
    "SandboxTriggerRuns",
    "SandboxTriggers",
    "Sandboxes",
    "SerializationError",
    "ServerError",
    "Session",
    "SessionObjects",
    "Shell",
    "SourceMetadata",
    "Terminal",
    "TerminalExit",
    "TransferProgress",
    "TransportError",
    "UnprocessableEntityError",
    "__version__",
    "configure",
    "organization",
    "repository",
]
