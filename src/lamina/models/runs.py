"""Governed runs (the ``/api/v2`` facade): ABPs, the result of invoking one, the runs it
makes, and an organization's usage summary.

An ABP is a named run definition in a repository (image, command, env, the part mounted,
whether a human must approve its changes); invoking a deployed ABP checks the caller's
policies (the verdict), runs it in a one-shot sandbox and answers an :class:`InvokeResult`;
:class:`Run` is that result as it is later, with the run's status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from lamina._errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "TERMINAL_RUN_STATUSES",
    "Abp",
    "GovernedRunCounts",
    "InvokeResult",
    "Run",
    "RunOutput",
    "StoredObjects",
    "UsageEvidencePack",
    "UsageEvidencePage",
    "UsageSummary",
    "invoke_body",
]

#: Statuses a run never leaves (``queued``, ``running`` and ``awaiting_approval`` are not).
TERMINAL_RUN_STATUSES = frozenset({"succeeded", "failed", "blocked"})


@frozen
class Abp:
    """An ABP: ``status`` is ``draft`` (created), ``deployed`` (it can be invoked) or
    ``undeployed``; ``image`` is ``""`` for the server's default image."""

    id: str
    name: str
    repository: str  # "org/repo"
    command: list[str]
    status: str
    image: str = ""
    requires_approval: bool = False
    description: str = ""
    env: dict[str, str] = field(factory=dict)
    timeout_seconds: int = 300
    path_prefix: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@frozen
class RunOutput:
    """What a run's sandbox did: its ``status`` (``done``, ``failed``...) and
    ``status_reason``, ``exit_code``, the ``commit_id`` its changes landed as, and, while its
    changes wait for approval, ``web_url`` (the review page)."""

    status: str
    exit_code: int | None = None
    commit_id: str | None = None
    status_reason: str = ""
    error_message: str = ""
    web_url: str | None = None


@frozen
class InvokeResult:
    """The answer to an invocation (velerian-sdk's ``InvokeResult``).

    ``outcome`` is ``completed``, ``requires_approval`` (``requires_human`` and ``withheld``
    are then true, and ``approval_id`` is the held session's id), ``denied`` (the verdict
    refused it: ``is_allowed`` is false, the reason is in ``aggregated_conditions``),
    ``blocked`` (a policy refused what the run read or wrote), ``failed`` or ``running`` (it
    was still going when the server answered: wait for it with ``org.runs.wait()``). The
    ``evidence_pack_*`` fields name the signed pack the run's end produced.
    """

    invocation_id: str
    outcome: str
    is_allowed: bool
    requires_human: bool
    withheld: bool
    constraint_count: int = 0
    aggregated_conditions: list[dict[str, Any]] = field(factory=list)
    output: RunOutput | None = None
    approval_id: str | None = None
    evidence_pack_id: str | None = None
    evidence_pack_s3_key: str | None = None
    evidence_pack_chain_hash: str | None = None
    model_error: str | None = None


@frozen
class Run(InvokeResult):
    """A governed run (``GET /api/v2/pack-runs/{run_id}``): its invocation's result as it is
    now, and ``status``: ``queued``, ``running``, ``awaiting_approval``, then ``succeeded``,
    ``failed`` (also when its held changes were rejected) or ``blocked``."""

    run_id: str = field(kw_only=True)
    status: str = field(kw_only=True)
    abp_id: str = field(kw_only=True)
    sandbox_id: str | None = field(default=None, kw_only=True)
    payload_sha256: str = field(default="", kw_only=True)
    created_at: datetime | None = field(default=None, kw_only=True)

    @property
    def is_terminal(self) -> bool:
        """Whether the run ended (``succeeded``, ``failed`` or ``blocked``)."""
        return self.status in TERMINAL_RUN_STATUSES


@frozen
class StoredObjects:
    """The objects at HEAD of an organization's live repositories, and their bytes."""

    count: int
    bytes: int


@frozen
class GovernedRunCounts:
    """An organization's governed runs, and how many ended each way (by ``outcome``)."""

    total: int
    by_outcome: dict[str, int] = field(factory=dict)


@frozen
class UsageEvidencePack:
    """An evidence pack as the usage summary lists it."""

    id: str
    kind: str  # "sandbox_run" | "approved_commit"
    repository: str  # "org/repo"
    subject_id: str
    chain_hash: str
    commit_id: str | None = None
    created_at: datetime | None = None


@frozen
class UsageEvidencePage:
    """Where the summary's page of evidence packs is, how many there are, and by kind."""

    limit: int
    offset: int
    total: int
    by_kind: dict[str, int] = field(factory=dict)


@frozen
class UsageSummary:
    """An organization's usage (``GET /organizations/{org}/usage/summary``): its
    repositories, the objects and bytes at their HEADs, their commits, sandbox runs and
    seconds, governed runs by outcome, and one page of its evidence packs (oldest first; walk
    them all with ``org.usage.evidence_packs()``)."""

    tenant_id: str  # the organization's id
    organization: str
    repositories: int
    objects: StoredObjects
    commits: int
    sandbox_runs: int
    sandbox_seconds: float
    governed_runs: GovernedRunCounts
    evidence_packs_page: UsageEvidencePage
    evidence_packs: list[UsageEvidencePack] = field(factory=list)
    as_of: datetime | None = None


def invoke_body(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """The body of an invocation, ``{"payload": {...}}`` (``None``: an empty payload).

    A payload that is not a mapping raises :class:`~lamina.InvalidArgumentTypeError`; one
    that JSON cannot carry (a ``datetime``, ``nan``, a key that is not a str...)
    :class:`~lamina.InvalidArgumentError`, before any request.
    """
    if payload is None:
        return {"payload": {}}
    if not isinstance(payload, Mapping):
        raise InvalidArgumentTypeError(
            f"invoke() takes the payload as a mapping (a JSON object), got {type(payload).__name__}"
        )
    body = dict(payload)
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"the payload is not JSON: {exc}") from exc
    if not all(isinstance(key, str) for key in body):
        raise InvalidArgumentError("the payload's keys must be str (JSON object keys)")
    return {"payload": body}
