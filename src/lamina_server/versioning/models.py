"""The engine's value types: what callers pass in and get back. Plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from lamina_server.principals import Committer as Committer  # recorded by commits and sessions

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry:
    """One object version: where its bytes live and what the client sees about them."""

    address: str  # blob-store key (shared by copies)
    size: int
    etag: str  # hex digest, no quotes
    content_type: str
    last_modified: datetime  # tz-aware UTC
    metadata: Mapping[str, str]  # user metadata


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    message: str
    metadata: Mapping[str, str]
    committer: Committer
    creation_date: datetime  # tz-aware UTC
    meta_range_id: str  # root tree node id
    object_count: int
    total_size: int


@dataclass(frozen=True, slots=True)
class ListingItem:
    path: str
    type: str  # "object" | "prefix"
    entry: Entry | None  # None for prefixes and for removed diff entries
    status: str | None = None  # diffs only: "added" | "modified" | "removed"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One uncommitted change in a session; ``entry`` None is a staged delete."""

    path: str
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    repository_id: str
    base_commit: str
    state: str  # "open" | "awaiting_approval" | "committed" | "rolled_back"
    created_by: Committer
    created_at: datetime
    commit_id: str | None  # set once committed


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_offset: str | None  # opaque cursor for `after`; None when has_more is False
