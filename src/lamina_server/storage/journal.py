"""What a write transaction records about itself, in the same transaction.

A task holds entries (:func:`hold`): the audit record of the request it serves, say. The next
write transaction that task runs through :class:`~lamina_server.storage.db.Database` (``begin``
or ``run_write``) hands every entry not yet written to the database's journal writer on its own
connection, after the change and before the commit, and marks them written once it committed:
the change and its record land together or not at all, and a request that writes twice is
recorded once, with its first write. A transaction that rolls back leaves its entries to the
next one.

Work done for several tasks in one transaction (a group commit) runs under :func:`carrying`
the entries of exactly the items it lands. A task started on behalf of a request inherits the
request's entries; a long-lived task that must not clears them with ``carrying(())``.

The entries are context-local (:mod:`contextvars`), so they follow a task and never leak
between concurrent requests. This module knows nothing of what an entry says: anything with a
``written`` flag will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


class Entry(Protocol):
    written: bool


_held: ContextVar[tuple[Any, ...]] = ContextVar("lamina_journal", default=())


def hold(entry: Entry) -> None:
    """The current task's next write transaction records ``entry``."""
    _held.set((*_held.get(), entry))


def pending() -> tuple[Any, ...]:
    """The current task's entries not yet written."""
    held = _held.get()
    if not held:
        return held
    return tuple(entry for entry in held if not entry.written)


@contextmanager
def carrying(entries: Iterable[Entry]) -> Iterator[None]:
    """Within the block, the task's entries are ``entries`` (and only those)."""
    token = _held.set(tuple(entries))
    try:
        yield
    finally:
        _held.reset(token)


def mark_written(entries: Iterable[Entry]) -> None:
    for entry in entries:
        entry.written = True
