"""Lamina's data models: attrs classes built by the one cattrs converter, free of I/O."""

from lamina.models.agents import AgentData
from lamina.models.api_keys import APIKeyCreated, APIKeyData, APIKeyList
from lamina.models.commits import CommitCreated, CommitData
from lamina.models.evidence import (
    EvidenceExport,
    EvidencePack,
    EvidencePackSummary,
    EvidencePublicKey,
)
from lamina.models.governance import Approval, AuditEntry, PrincipalRef
from lamina.models.groups import EffectiveGroup, GroupData, GroupDetail, GroupMember
from lamina.models.objects import (
    CopyObjectResult,
    DeletedObjects,
    Entry,
    EntryRecord,
    FinalizedObject,
    ListingEntry,
    MultipartUpload,
    ObjectMetadata,
    PartTicket,
    PutObjectResult,
    SourceMetadata,
    UploadTicket,
)
from lamina.models.organizations import Membership, OrganizationData, ResultList
from lamina.models.policies import (
    Attachment,
    EffectivePolicy,
    Explanation,
    GeneratedPolicy,
    PolicyData,
    PolicyDetail,
    ValidationIssue,
    ValidationResult,
)
from lamina.models.repositories import ApprovalRule, RepositoryData
from lamina.models.roles import RoleData
from lamina.models.sandboxes import (
    PIPE,
    OutputEvent,
    OutputStream,
    RunAs,
    RunResult,
    SandboxData,
    SandboxOutcome,
    SandboxStatus,
    SandboxTriggerCondition,
    SandboxTriggerConfig,
    SandboxTriggerData,
    SandboxTriggerRun,
    TerminalExit,
)
from lamina.models.secrets import SecretData, SecretValue
from lamina.models.sessions import ApprovalRequired, CommitResult, SessionCreated
from lamina.models.transfers import TransferProgress
from lamina.models.users import CallerPrincipal, CurrentUser, OrganizationSummary, UserData

__all__ = [
    "PIPE",
    "APIKeyCreated",
    "APIKeyData",
    "APIKeyList",
    "AgentData",
    "Approval",
    "ApprovalRequired",
    "ApprovalRule",
    "Attachment",
    "AuditEntry",
    "CallerPrincipal",
    "CommitCreated",
    "CommitData",
    "CommitResult",
    "CopyObjectResult",
    "CurrentUser",
    "DeletedObjects",
    "EffectiveGroup",
    "EffectivePolicy",
    "Entry",
    "EntryRecord",
    "EvidenceExport",
    "EvidencePack",
    "EvidencePackSummary",
    "EvidencePublicKey",
    "Explanation",
    "FinalizedObject",
    "GeneratedPolicy",
    "GroupData",
    "GroupDetail",
    "GroupMember",
    "ListingEntry",
    "Membership",
    "MultipartUpload",
    "ObjectMetadata",
    "OrganizationData",
    "OrganizationSummary",
    "OutputEvent",
    "OutputStream",
    "PartTicket",
    "PolicyData",
    "PolicyDetail",
    "PrincipalRef",
    "PutObjectResult",
    "RepositoryData",
    "ResultList",
    "RoleData",
    "RunAs",
    "RunResult",
    "SandboxData",
    "SandboxOutcome",
    "SandboxStatus",
    "SandboxTriggerCondition",
    "SandboxTriggerConfig",
    "SandboxTriggerData",
    "SandboxTriggerRun",
    "SecretData",
    "SecretValue",
    "SessionCreated",
    "SourceMetadata",
    "TerminalExit",
    "TransferProgress",
    "UploadTicket",
    "UserData",
    "ValidationIssue",
    "ValidationResult",
]
