"""One database read shared by every concurrent caller, never older than any of them.

A value every request must see fresh (the access epoch, on replicas that share no memory)
would cost a query per request. :class:`FreshRead` runs at most one query at a time: callers
that ask while one runs wait for the next, which starts once it ends and answers all of them.
Each caller's answer comes from a query that began after it asked, so it reflects every
transaction committed before it asked, as its own query would; under load, one query answers
a whole batch of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    """``await fresh.get()``: what ``read()`` returns, from a read begun after the call."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._next: asyncio.Future[T] | None = None  # the read that starts next, and its waiters
        self._pump: asyncio.Task[None] | None = None

    async def get(self) -> T:
        waiting = self._next
        if waiting is None:
            waiting = self._next = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieve)
            if self._pump is None:
                self._pump = asyncio.get_running_loop().create_task(self._run())
        return await asyncio.shield(waiting)

    async def _run(self) -> None:
        waiting: asyncio.Future[T] | None = None
        try:
            while self._next is not None:
                waiting, self._next = self._next, None
                try:
                    value = await self._read()
                except Exception as exc:
                    waiting.set_exception(exc)
                else:
                    waiting.set_result(value)
        finally:
            self._pump = None
            for left in (waiting, self._next):
                if left is not None and not left.done():
                    left.cancel()
            self._next = None


def _retrieve(future: asyncio.Future[T]) -> None:
    """Marks a failed read's error as seen when every waiter was cancelled meanwhile."""
    if not future.cancelled():
        future.exception()
