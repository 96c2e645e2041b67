"""Repositories."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from attrs import frozen

#: Which commits wait for a human's approval: none, an agent's, or every commit.
ApprovalRule = Literal["none", "agents", "all"]


@frozen
class RepositoryData:
    """A repository as the API returns it (``GET /organizations/{org}/repositories/{name}``)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    visibility: str = ""
    retention_days: int | None = None
    session_max_duration_days: int | None = None
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    #: ``none``, ``agents`` or ``all`` (see :data:`ApprovalRule`); a str, so that a rule a
    #: newer server adds still reads.
    approval_required_for: str = "none"
    #: Path prefixes: when not empty, only commits changing a path under one need approval.
    approval_paths: tuple[str, ...] = ()
