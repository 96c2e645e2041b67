"""Engine errors. The HTTP layer maps each class to one status and code.

::

    VersioningError
    ├── SessionNotFound        unknown session (or one of another repository)
    ├── SessionClosed          the session was committed or rolled back (``state``)
    ├── ObjectNotFound         no entry at ``path`` in the view read
    ├── RefNotFound            unknown commit id (``ref``)
    ├── MergeConflict          paths changed on both sides (``paths``, sorted)
    ├── RevertNotSupported     root or merge commit
    ├── InvalidCursor          a malformed ``after``
    └── ConcurrentUpdate       HEAD (or the session) kept moving under a commit; nothing landed
"""

from __future__ import annotations

from collections.abc import Iterable


class VersioningError(Exception):
    """Root of the engine's errors; ``str()`` is a human message."""


class SessionNotFound(VersioningError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} not found")
        self.session_id = session_id


class SessionClosed(VersioningError):
    def __init__(self, session_id: str, state: str) -> None:
        words = {"rolled_back": "rolled back", "awaiting_approval": "awaiting approval"}
        super().__init__(f"session {session_id!r} is already {words.get(state, state)}")
        self.session_id = session_id
        self.state = state


class ObjectNotFound(VersioningError):
    def __init__(self, path: str) -> None:
        super().__init__(f"object {path!r} not found")
        self.path = path


class RefNotFound(VersioningError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"commit {ref!r} not found")
        self.ref = ref


class MergeConflict(VersioningError):
    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = sorted(paths)
        shown = ", ".join(self.paths[:20])
        more = f" (and {len(self.paths) - 20} more)" if len(self.paths) > 20 else ""
        super().__init__(f"conflicting changes on {len(self.paths)} path(s): {shown}{more}")


class RevertNotSupported(VersioningError):
    pass


class InvalidCursor(VersioningError):
    def __init__(self, cursor: str, reason: str) -> None:
        super().__init__(f"invalid cursor {cursor!r}: {reason}")
        self.cursor = cursor


class ConcurrentUpdate(VersioningError):
    """A commit or revert lost the race to move HEAD on every attempt; nothing landed."""

    def __init__(self, repository_id: str, attempts: int) -> None:
        super().__init__(
            f"HEAD of repository {repository_id!r} kept moving: the change did not land after "
            f"{attempts} attempts; try again"
        )
        self.repository_id = repository_id
        self.attempts = attempts
