"""The versioning engine: commits over a persistent sorted tree, sessions, merge and diff.

Repositories are known only by id. Each commit points at the root of a prolly tree
(:mod:`.tree`) of content-addressed nodes shared between commits, so commit, diff and prefix
listing cost follows the size of the change or page, not of the repository. Sessions stage
changes in SQL (:mod:`.sql`, :mod:`.sessions`) and land them with a three-way merge
(:mod:`.merge`) and a compare-and-swap of HEAD (:mod:`.commits`). :class:`VersionStore`
(:mod:`.store`) is the async face over those transactions and the reads (:mod:`.reads`);
every change it makes is told to its :class:`Recorder` in the same transaction
(:mod:`.recorder`). :class:`CachingVersionStore` (:mod:`.caching`) remembers open sessions,
and :class:`Staging` (:mod:`.staging`) group-commits the puts of concurrent uploads.
"""

from __future__ import annotations

from lamina_server.principals import Committer
from lamina_server.versioning.caching import CachingVersionStore
from lamina_server.versioning.commits import INITIAL_MESSAGE
from lamina_server.versioning.errors import (
    ConcurrentUpdate,
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
from lamina_server.versioning.recorder import NO_RECORDER, ChangeEvent, Recorder, Recorders
from lamina_server.versioning.staging import Claim, Staging
from lamina_server.versioning.store import VersionStore

__all__ = [
    "INITIAL_MESSAGE",
    "NO_RECORDER",
    "CachingVersionStore",
    "ChangeEvent",
    "ChangeRecord",
    "Claim",
    "CommitInfo",
    "Committer",
    "ConcurrentUpdate",
    "Entry",
    "InvalidCursor",
    "ListingItem",
    "MergeConflict",
    "ObjectNotFound",
    "Page",
    "Recorder",
    "Recorders",
    "RefNotFound",
    "RevertNotSupported",
    "SessionClosed",
    "SessionInfo",
    "SessionNotFound",
    "Staging",
    "VersionStore",
    "VersioningError",
]
