"""FreshRead: one read answers every caller that asked before it began, and none that asked
after."""

from __future__ import annotations

import asyncio

import pytest

from lamina_server.storage.fresh_reads import FreshRead

pytestmark = pytest.mark.anyio


class Counter:
    """A "database" value that changes; each read sees it as of the read's start."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.gate = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value
        await self.gate.wait()
        return seen


async def test_concurrent_callers_share_one_read() -> None:
    counter = Counter()
    fresh = FreshRead(counter.read)
    callers = [asyncio.ensure_future(fresh.get()) for _ in range(20)]
    await asyncio.sleep(0)
    counter.gate.set()
    assert await asyncio.gather(*callers) == [0] * 20
    assert counter.reads == 1


async def test_a_caller_arriving_during_a_read_gets_a_later_read() -> None:
    counter = Counter()
    fresh = FreshRead(counter.read)
    first = asyncio.ensure_future(fresh.get())
    await asyncio.sleep(0.01)  # the first read has begun and sees 0
    counter.value = 1  # a change commits; then a second request arrives
    second = asyncio.ensure_future(fresh.get())
    third = asyncio.ensure_future(fresh.get())
    await asyncio.sleep(0)
    counter.gate.set()
    assert await first == 0
    assert await second == 1 and await third == 1
    assert counter.reads == 2


async def test_a_failed_read_fails_its_callers_and_the_next_read_runs() -> None:
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return 7

    fresh = FreshRead(read)
    with pytest.raises(RuntimeError, match="database gone"):
        await fresh.get()
    assert await fresh.get() == 7


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    counter = Counter()
    fresh = FreshRead(counter.read)
    leaving = asyncio.ensure_future(fresh.get())
    staying = asyncio.ensure_future(fresh.get())
    await asyncio.sleep(0)
    leaving.cancel()
    counter.gate.set()
    assert await staying == 0
    with pytest.raises(asyncio.CancelledError):
        await leaving
