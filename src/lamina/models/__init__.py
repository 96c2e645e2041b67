"""Lamina's data models: attrs classes built by the one cattrs converter, free of I/O."""

from lamina.models.commits import CommitCreated, CommitData
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
from lamina.models.repositories import RepositoryData
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
from lamina.models.sessions import ApprovalRequired, CommitResult, SessionCreated
from lamina.models.transfers import TransferProgress

__all__ = [
    "PIPE",
    "ApprovalRequired",
    "CommitCreated",
    "CommitData",
    "CommitResult",
    "CopyObjectResult",
    "DeletedObjects",
    "Entry",
    "EntryRecord",
    "FinalizedObject",
    "ListingEntry",
    "Membership",
    "MultipartUpload",
    "ObjectMetadata",
    "OrganizationData",
    "OutputEvent",
    "OutputStream",
    "PartTicket",
    "PutObjectResult",
    "RepositoryData",
    "ResultList",
    "RunAs",
    "RunResult",
    "SandboxData",
    "SandboxOutcome",
    "SandboxStatus",
    "SandboxTriggerCondition",
    "SandboxTriggerConfig",
    "SandboxTriggerData",
    "SandboxTriggerRun",
    "SessionCreated",
    "SourceMetadata",
    "TerminalExit",
    "TransferProgress",
    "UploadTicket",
]
