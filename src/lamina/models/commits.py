"""Commits and the responses of the calls that create them."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen


@frozen
class CommitData:
    """One entry of a repository's log (``GET .../log``, ``GET .../commits/{id}``)."""

    id: str
    committer: str = ""
    committer_type: str = ""
    committer_id: str = ""
    message: str = ""
    creation_date: datetime | None = None
    parents: tuple[str, ...] = ()
    metadata: dict[str, str] = field(factory=dict)
    is_stale: bool = False
    meta_range_id: str = ""
    object_count: int | None = None
    total_size: int | None = None


@frozen
class CommitCreated:
    """The body of a successful commit or revert: ``{"commit_id": ...}``."""

    commit_id: str
