"""The sandbox's value types: the request, the record, and the status machine's words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Modes (CreateSandboxRequest.mode)
ONE_SHOT = "one-shot"
INTERACTIVE = "interactive"
SERVICE = "service"
MODES = (ONE_SHOT, INTERACTIVE, SERVICE)

# Statuses and their reasons: starting and running are active, the others terminal.
STARTING, RUNNING, DONE, ERRORED, FAILED, CANCELLED = (
    "starting",
    "running",
    "done",
    "errored",
    "failed",
    "cancelled",
)
ACTIVE = (STARTING, RUNNING)
CREATED, INITIALIZING = "created", "initializing"
COMMITTED, NO_CHANGES, AWAITING_APPROVAL = "committed", "no_changes", "awaiting_approval"
EXIT_NON_ZERO = "exit_non_zero"
INTERNAL_ERROR, IMAGE_NOT_FOUND, SANDBOX_LOST, TIMEOUT, COMMIT_FAILED = (
    "internal_error",
    "image_not_found",
    "sandbox_lost",
    "timeout",
    "commit_failed",
)
POLICY_VIOLATION, STORAGE_NOT_READY = "policy_violation", "storage_not_ready"
CANCELLED_BY_USER = "cancelled_by_user"

DEFAULT_MOUNTPOINT = "/sandbox"
DEFAULT_TIMEOUT_SECONDS = 3600

# Commit metadata a sandbox's commit carries.
META_SANDBOX_ID = "lamina.sandbox_id"
META_TRIGGER_ID = "lamina.trigger_id"
META_TRIGGER_DEPTH = "lamina.trigger_depth"


@dataclass(frozen=True, slots=True)
class RunAs:
    type: str  # "agent" | "role"
    id: str
    name: str = ""  # known once the server found the principal


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    """What a client (or a trigger) asks for, validated."""

    image: str
    command: Sequence[str] = ()
    mountpoint: str = DEFAULT_MOUNTPOINT
    path_prefix: str = ""
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    env_vars: Mapping[str, str] = field(default_factory=dict)
    mode: str = ONE_SHOT
    run_as: RunAs | None = None
    # Its changes wait for a human's approval whatever the repository's rule (a governed run).
    require_approval: bool = False
    # Small files the run reads under /lamina/input/<name> (a governed run's payload); not kept.
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Origin:
    """Why a sandbox exists when no client asked for it directly: a trigger fired."""

    trigger_id: str
    depth: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a sandbox's status machine is."""

    status: str
    status_reason: str = ""
    exit_code: int | None = None
    commit_id: str = ""
    web_url: str = ""
    error_message: str = ""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str
    repository_id: str
    request: SandboxRequest
    outcome: Outcome
    session_id: str | None
    created_by_type: str
    created_by: str
    created_by_name: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    trigger_id: str | None = None
    trigger_depth: int = 0
    # The policy decisions its run took: {"action", "resource", "allowed", "reason"} each.
    decisions: tuple[Mapping[str, Any], ...] = ()
