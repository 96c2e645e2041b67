"""The versioning engine: commits over a persistent sorted tree, sessions, merge and diff.

Repositories are known only by id. Each commit points at the root of a prolly tree
(:mod:`.tree`) of content-addressed nodes shared between commits, so commit, diff and prefix
listing cost follows the size of the change or page, not of the repository. Sessions stage
changes in SQL (:mod:`.sql`) and land them with a three-way merge and a compare-and-swap of
HEAD (:mod:`.store`).
"""

from __future__ import annotations

from lamina_server.principals import Committer
from lamina_server.versioning.errors import (
    InvalidCursor,
    MergeConflict,
    ObjectNotFound,
    RefNotFound,
    RevertNotSupported,
    SessionClosed,
    SessionNotFound,
    VersioningError,
)
from lamina_server.versioning.models import (
    ChangeRecord,
    CommitInfo,
    Entry,
    ListingItem,
    Page,
    SessionInfo,
)
from lamina_server.versioning.store import INITIAL_MESSAGE, VersionStore

__all__ = [
    "INITIAL_MESSAGE",
    "ChangeRecord",
    "CommitInfo",
    "Committer",
    "Entry",
    "InvalidCursor",
    "ListingItem",
    "MergeConflict",
    "ObjectNotFound",
    "Page",
    "RefNotFound",
    "RevertNotSupported",
    "SessionClosed",
    "SessionInfo",
    "SessionNotFound",
    "VersionStore",
    "VersioningError",
]
