"""The actions a request can perform. Every route names one (or, for a copy, two)."""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """An action's value is its name in policies (``GetObject()``) and in 403 messages."""

    # Organizations and their members
    CREATE_ORGANIZATION = "CreateOrganization"
    LIST_ORGANIZATIONS = "ListOrganizations"
    GET_ORGANIZATION = "GetOrganization"
    DELETE_ORGANIZATION = "DeleteOrganization"
    LIST_MEMBERS = "ListMembers"
    MANAGE_MEMBERS = "ManageMembers"
    RESPOND_TO_INVITATIONS = "RespondToInvitations"  # the caller's own invitations
    # Identity and access
    MANAGE_GROUPS = "ManageGroups"
    MANAGE_POLICIES = "ManagePolicies"
    MANAGE_ROLES = "ManageRoles"
    MANAGE_AGENTS = "ManageAgents"
    MANAGE_API_KEYS = "ManageAPIKeys"
    MANAGE_S3_CREDENTIALS = "ManageS3Credentials"  # the caller's own, for the S3 gateway
    MANAGE_SECRETS = "ManageSecrets"
    GET_SECRET = "GetSecret"
    # Repositories
    LIST_REPOSITORIES = "ListRepositories"
    GET_REPOSITORY = "GetRepository"
    CREATE_REPOSITORY = "CreateRepository"
    UPDATE_REPOSITORY = "UpdateRepository"
    DELETE_REPOSITORY = "DeleteRepository"
    # Sessions
    CREATE_SESSION = "CreateSession"
    GET_SESSION = "GetSession"
    COMMIT_SESSION = "CommitSession"
    ROLLBACK_SESSION = "RollbackSession"
    APPROVE_SESSION = "ApproveSession"
    # Objects
    LIST_OBJECTS = "ListObjects"
    GET_OBJECT = "GetObject"
    PUT_OBJECT = "PutObject"
    DELETE_OBJECT = "DeleteObject"
    # Commits
    LIST_COMMITS = "ListCommits"
    GET_COMMIT = "GetCommit"
    REVERT_COMMIT = "RevertCommit"
    # Sandboxes and their triggers
    CREATE_SANDBOX = "CreateSandbox"
    LIST_SANDBOXES = "ListSandboxes"
    GET_SANDBOX = "GetSandbox"
    EXEC_SANDBOX = "ExecSandbox"
    CANCEL_SANDBOX = "CancelSandbox"
    FINISH_SANDBOX = "FinishSandbox"
    MANAGE_SANDBOX_TRIGGERS = "ManageSandboxTriggers"
    # Integrations and governance
    MANAGE_CONNECTORS = "ManageConnectors"
    IMPORT_DATA = "ImportData"
    READ_AUDIT_LOG = "ReadAuditLog"
    EXPORT_EVIDENCE = "ExportEvidence"
    INVOKE_RUN = "InvokeRun"

    def __str__(self) -> str:
        return self.value
