"""Hand-written async/blocking pairs, so that code generated from ``_async`` never imports anyio.

The generator renames the async half to the blocking half: ``asleep`` -> ``sleep``,
``AsyncLimiter`` -> ``Limiter``, ``AsyncBatcher`` -> ``Batcher``, ``agather_bounded`` ->
``gather_bounded``, ``aiterate`` -> ``iterate``. The async half runs
on any event loop anyio supports (asyncio, trio); the blocking half uses threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from lamina._errors import InvalidArgumentError

__all__ = [
    "AsyncBatcher",
    "AsyncLimiter",
    "Batcher",
    "Limiter",
    "agather_bounded",
    "aiterate",
    "asleep",
    "gather_bounded",
    "iterate",
    "sleep",
]

T = TypeVar("T")
R = TypeVar("R")


async def asleep(seconds: float) -> None:
    """Sleep without blocking the event loop."""
    await anyio.sleep(seconds)


def sleep(seconds: float) -> None:
    """Sleep (blocking twin of :func:`asleep`)."""
    time.sleep(seconds)


async def aiterate(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """The items of an iterable or an async iterable, as an async iterator."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def iterate(items: Iterable[T]) -> Iterator[T]:
    """The items of an iterable (blocking twin of :func:`aiterate`)."""
    return iter(items)


class AsyncLimiter:
    """At most ``total`` holders at once: ``async with limiter: ...``."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise InvalidArgumentError(
                f"max_concurrency must be at least 1 (requests in flight), got {total!r}"
            )
        self.total = total
        self._semaphore = anyio.Semaphore(total, fast_acquire=True)

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._semaphore.release()


class Limiter:
    """At most ``total`` holders at once: ``with limiter: ...`` (threads)."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise InvalidArgumentError(
                f"max_concurrency must be at least 1 (requests in flight), got {total!r}"
            )
        self.total = total
        self._semaphore = threading.Semaphore(total)

    def __enter__(self) -> None:
        self._semaphore.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._semaphore.release()


async def agather_bounded(funcs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the zero-argument coroutine functions with at most ``limit`` at once.

    Returns their results in order. The first failure cancels the others and is re-raised as
    itself (not wrapped in an exception group).
    """
    if limit < 1:
        raise InvalidArgumentError(
            f"concurrency must be at least 1 (transfers at once), got {limit!r}"
        )
    results: dict[int, T] = {}
    next_index = itertools.count()
    failure: list[BaseException] = []

    async def worker(group: TaskGroup) -> None:
        for index in next_index:
            if index >= len(funcs):
                return
            try:
                results[index] = await funcs[index]()
            except Exception as exc:
                failure.append(exc)
                group.cancel_scope.cancel()
                return

    async with anyio.create_task_group() as group:
        for _ in range(min(limit, len(funcs))):
            group.start_soon(worker, group)
    if failure:
        raise failure[0]
    return [results[index] for index in range(len(funcs))]


def gather_bounded(funcs: Sequence[Callable[[], T]], limit: int) -> list[T]:
    """Run the zero-argument callables in at most ``limit`` threads at once.

    Returns their results in order. The first failure cancels the calls not yet started, waits
    for the running ones, and is re-raised as itself.
    """
    if limit < 1:
        raise InvalidArgumentError(
            f"concurrency must be at least 1 (transfers at once), got {limit!r}"
        )
    if not funcs:
        return []
    with ThreadPoolExecutor(max_workers=min(limit, len(funcs))) as pool:
        futures = [pool.submit(func) for func in funcs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and (error := future.exception()) is not None:
                for other in futures:
                    other.cancel()
                raise error
        return [future.result() for future in futures]


@dataclass(eq=False)
class _Call(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: Exception | None = None

    def settle(self, outcome: R | Exception) -> None:
        self.done = True
        if isinstance(outcome, Exception):
            self.error = outcome
        else:
            self.result = outcome

    def answer(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class AsyncBatcher(Generic[T, R]):
    """Concurrent calls sent together: ``await batcher.submit(item)``.

    One ``send(items) -> outcomes`` runs at a time. A call that finds none running sends its
    item at once (alone, when nothing else waits); calls that come while one runs wait for it,
    then the first of them sends all of theirs in one. ``send`` answers each item with its
    result or its exception, in order. A caller cancelled while its batch is out hands the
    batch's other items back to the queue, for one of their callers to send.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[list[R | Exception]]]) -> None:
        self._send = send
        self._queue: list[_Call[T, R]] = []
        self._running: anyio.Event | None = None

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing is being sent."""
        return not self._queue and self._running is None

    async def submit(self, item: T) -> R:
        call: _Call[T, R] = _Call(item)
        self._queue.append(call)
        try:
            while not call.done:
                if self._running is None:
                    await self._send_queued()
                else:
                    await self._running.wait()
        finally:
            if call in self._queue:
                self._queue.remove(call)
        return call.answer()

    async def _send_queued(self) -> None:
        self._running = running = anyio.Event()
        batch: list[_Call[T, R]] = []
        try:
            # Callers woken with this one (by the end of the last batch) join it.
            await anyio.lowlevel.checkpoint()
            batch, self._queue = self._queue, []
            outcomes = await self._send([call.item for call in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        except BaseException:
            self._queue[:0] = batch
            raise
        finally:
            self._running = None
            running.set()
        for call, outcome in zip(batch, outcomes, strict=True):
            call.settle(outcome)


class Batcher(Generic[T, R]):
    """Concurrent calls sent together: ``batcher.submit(item)`` (blocking twin of
    :class:`AsyncBatcher`, for calls from several threads)."""

    def __init__(self, send: Callable[[list[T]], list[R | Exception]]) -> None:
        self._send = send
        self._queue: list[_Call[T, R]] = []
        self._running = False
        self._changed = threading.Condition()

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing is being sent."""
        with self._changed:
            return not self._queue and not self._running

    def submit(self, item: T) -> R:
        call: _Call[T, R] = _Call(item)
        with self._changed:
            self._queue.append(call)
            while not call.done and self._running:
                self._changed.wait()
            if call.done:
                return call.answer()
            self._running = True
            batch, self._queue = self._queue, []
        outcomes: list[R | Exception] = []
        try:
            outcomes = self._send([queued.item for queued in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            with self._changed:
                if outcomes:
                    for queued, outcome in zip(batch, outcomes, strict=True):
                        queued.settle(outcome)
                else:  # interrupted: the others go back to the queue
                    self._queue[:0] = [queued for queued in batch if queued is not call]
                self._running = False
                self._changed.notify_all()
        return call.answer()
