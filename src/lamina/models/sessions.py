"""Sessions: the responses of create, list and commit."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from attrs import frozen


@frozen
class SessionCreated:
    """The body of ``POST .../sessions``."""

    session_id: str


@frozen
class OpenSession:
    """A session that is open (``state`` ``"open"``) or held for approval
    (``"awaiting_approval"``), as ``repo.open_sessions()`` lists it."""

    session_id: str
    state: str
    base_commit: str
    created_by_type: str
    created_by: str
    created_by_name: str
    created_at: datetime


@frozen
class ApprovalRequired:
    """The 202 body of a commit that a human has to approve."""

    web_url: str = ""
    session_id: str = ""
    message: str = ""
    api_url: str = ""


@frozen
class CommitResult:
    """What a commit did: ``committed`` (with ``commit_id``) or ``approval_required``
    (with ``web_url``, where a human approves it, and ``api_url``, the contract's approve
    route). ``session_id`` is the committed session's."""

    status: Literal["committed", "approval_required"]
    commit_id: str | None = None
    web_url: str | None = None
    session_id: str | None = None
    api_url: str | None = None
