"""Hand-written async/blocking pairs, so that code generated from ``_async`` never imports anyio.

The generator renames the async half to the blocking half: ``asleep`` -> ``sleep``,
``AsyncLimiter`` -> ``Limiter``, ``agather_bounded`` -> ``gather_bounded``, ``aiterate`` ->
``iterate``. The async half runs
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
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from lamina._errors import InvalidArgumentError

__all__ = [
    "AsyncLimiter",
    "Limiter",
    "agather_bounded",
    "aiterate",
    "asleep",
    "gather_bounded",
    "iterate",
    "sleep",
]

T = TypeVar("T")


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
