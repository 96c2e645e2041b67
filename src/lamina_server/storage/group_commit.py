"""Group commit: many concurrent callers, one costly operation per batch of them.

A caller of :meth:`GroupCommit.submit` whose item finds no batch running starts one with every
item submitted so far; items submitted meanwhile wait for it to end, then the first of them
starts the next batch with all of them. Each caller answers with its own item's outcome. When a
batch ends, all its callers are released at once — none waits behind another for a lock — so
the next batch starts right away and takes everything that queued up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import anyio

ItemT = TypeVar("ItemT")
OutcomeT = TypeVar("OutcomeT")


@dataclass(eq=False)
class _Entry(Generic[ItemT, OutcomeT]):
    item: ItemT
    done: bool = False
    outcome: OutcomeT | None = None
    error: Exception | None = None


class GroupCommit(Generic[ItemT, OutcomeT]):
    """Runs ``flush(items) -> outcomes`` (one per item, in order) on batches of submitted items.

    A batch runs to its end even if the caller that started it is cancelled, so every item it
    took gets an outcome. An exception from ``flush`` is every item's error.
    """

    def __init__(self, flush: Callable[[Sequence[ItemT]], Awaitable[Sequence[OutcomeT]]]) -> None:
        self._flush = flush
        self._queue: list[_Entry[ItemT, OutcomeT]] = []
        self._running: anyio.Event | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch running."""
        return not self._queue and self._running is None

    async def submit(self, item: ItemT) -> OutcomeT:
        entry: _Entry[ItemT, OutcomeT] = _Entry(item)
        self._queue.append(entry)
        try:
            while not entry.done:
                if self._running is None:
                    await self._run_batch()
                else:
                    await self._running.wait()
        finally:
            if entry in self._queue:  # cancelled before any batch took it
                self._queue.remove(entry)
        if entry.error is not None:
            raise entry.error
        return cast(OutcomeT, entry.outcome)

    async def _run_batch(self) -> None:
        self._running = running = anyio.Event()
        batch: list[_Entry[ItemT, OutcomeT]] = []
        try:
            with anyio.CancelScope(shield=True):
                # Callers woken together (say, by the end of another batch) all join this one.
                await anyio.sleep(0)
                batch, self._queue = self._queue, []
                outcomes = await self._flush([entry.item for entry in batch])
        except Exception as exc:
            for entry in batch:
                entry.done, entry.error = True, exc
        else:
            for entry, outcome in zip(batch, outcomes, strict=True):
                entry.done, entry.outcome = True, outcome
        finally:
            self._running = None
            running.set()
