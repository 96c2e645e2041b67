"""The API's nouns as resource classes: one module per domain, named after it."""

from lamina._async.resources.commits import AsyncCommit, AsyncCommits
from lamina._async.resources.objects import AsyncReadOnlyObjects, AsyncSessionObjects
from lamina._async.resources.organizations import (
    AsyncMembers,
    AsyncOrganization,
    AsyncOrganizations,
)
from lamina._async.resources.repositories import AsyncRepositories, AsyncRepository
from lamina._async.resources.sandbox_triggers import (
    AsyncSandboxTrigger,
    AsyncSandboxTriggerRuns,
    AsyncSandboxTriggers,
)
from lamina._async.resources.sandboxes import AsyncSandbox, AsyncSandboxes, AsyncShell
from lamina._async.resources.sessions import AsyncSession

__all__ = [
    "AsyncCommit",
    "AsyncCommits",
    "AsyncMembers",
    "AsyncOrganization",
    "AsyncOrganizations",
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
]
