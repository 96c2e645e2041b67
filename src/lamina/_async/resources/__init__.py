"""The API's nouns as resource classes: one module per domain, named after it."""

from lamina._async.resources.abps import AsyncAbps
from lamina._async.resources.agents import AsyncAgent, AsyncAgents
from lamina._async.resources.api_keys import AsyncAPIKey, AsyncAPIKeys
from lamina._async.resources.approvals import AsyncApprovals
from lamina._async.resources.audit_log import AsyncAuditLog
from lamina._async.resources.auth import AsyncAuth
from lamina._async.resources.commits import AsyncCommit, AsyncCommits
from lamina._async.resources.connectors import (
    AsyncConnector,
    AsyncConnectors,
    AsyncRepositoryConnectors,
)
from lamina._async.resources.evidence import AsyncEvidencePacks, AsyncOrganizationEvidence
from lamina._async.resources.groups import AsyncGroup, AsyncGroupMembers, AsyncGroups
from lamina._async.resources.imports import AsyncImportJob, AsyncImports
from lamina._async.resources.objects import AsyncReadOnlyObjects, AsyncSessionObjects
from lamina._async.resources.organizations import (
    AsyncMembers,
    AsyncOrganization,
    AsyncOrganizations,
)
from lamina._async.resources.policies import AsyncPolicies, AsyncPolicy
from lamina._async.resources.repositories import AsyncRepositories, AsyncRepository
from lamina._async.resources.roles import AsyncRole, AsyncRoles
from lamina._async.resources.runs import AsyncRuns
from lamina._async.resources.s3_credentials import AsyncS3Credentials
from lamina._async.resources.sandbox_triggers import (
    AsyncSandboxTrigger,
    AsyncSandboxTriggerRuns,
    AsyncSandboxTriggers,
)
from lamina._async.resources.sandboxes import AsyncSandbox, AsyncSandboxes, AsyncShell
from lamina._async.resources.secrets import AsyncSecret, AsyncSecrets
from lamina._async.resources.sessions import AsyncSession
from lamina._async.resources.usage import AsyncUsage

__all__ = [
    "AsyncAPIKey",
    "AsyncAPIKeys",
    "AsyncAbps",
    "AsyncAgent",
    "AsyncAgents",
    "AsyncApprovals",
    "AsyncAuditLog",
    "AsyncAuth",
    "AsyncCommit",
    "AsyncCommits",
    "AsyncConnector",
    "AsyncConnectors",
    "AsyncEvidencePacks",
    "AsyncGroup",
    "AsyncGroupMembers",
    "AsyncGroups",
    "AsyncImportJob",
    "AsyncImports",
    "AsyncMembers",
    "AsyncOrganization",
    "AsyncOrganizationEvidence",
    "AsyncOrganizations",
    "AsyncPolicies",
    "AsyncPolicy",
    "AsyncReadOnlyObjects",
    "AsyncRepositories",
    "AsyncRepository",
    "AsyncRepositoryConnectors",
    "AsyncRole",
    "AsyncRoles",
    "AsyncRuns",
    "AsyncS3Credentials",
    "AsyncSandbox",
    "AsyncSandboxTrigger",
    "AsyncSandboxTriggerRuns",
    "AsyncSandboxTriggers",
    "AsyncSandboxes",
    "AsyncSecret",
    "AsyncSecrets",
    "AsyncSession",
    "AsyncSessionObjects",
    "AsyncShell",
    "AsyncUsage",
]
