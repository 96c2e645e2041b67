"""The hand-written async/blocking pairs: bounded gathering, limiters, iteration."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from lamina._concurrency import (
    AsyncLimiter,
    Limiter,
    agather_bounded,
    aiterate,
    gather_bounded,
    iterate,
)


class Peak:
    """Counts how many calls run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self._lock:
            self.running -= 1


@pytest.mark.anyio
async def test_agather_bounded_keeps_order_and_the_limit() -> None:
    peak = Peak()

    def job(n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            peak.enter()
            await anyio.sleep(0.01 * (n % 3))
            peak.leave()
            return n * n

        return run

    assert await agather_bounded([job(n) for n in range(20)], 4) == [n * n for n in range(20)]
    assert peak.peak == 4
    assert await agather_bounded([], 4) == []


@pytest.mark.anyio
async def test_agather_bounded_raises_the_first_error_and_cancels_the_rest() -> None:
    finished: list[int] = []

    def job(n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            if n == 1:
                raise KeyError("boom")
            await anyio.sleep(0.2)
            finished.append(n)
            return n

        return run

    with pytest.raises(KeyError, match="boom"):
        await agather_bounded([job(n) for n in range(10)], 3)
    assert finished == []  # the others were cancelled, none started after the failure


def test_gather_bounded_keeps_order_and_the_limit() -> None:
    peak = Peak()

    def job(n: int) -> Callable[[], int]:
        def run() -> int:
            peak.enter()
            time.sleep(0.005 * (n % 3))
            peak.leave()
            return n * n

        return run

    assert gather_bounded([job(n) for n in range(20)], 4) == [n * n for n in range(20)]
    assert peak.peak == 4
    assert gather_bounded([], 4) == []


def test_gather_bounded_raises_the_first_error_and_skips_calls_not_started() -> None:
    started: list[int] = []

    def job(n: int) -> Callable[[], int]:
        def run() -> int:
            started.append(n)
            if n == 0:
                raise KeyError("boom")
            time.sleep(0.05)
            return n

        return run

    with pytest.raises(KeyError, match="boom"):
        gather_bounded([job(n) for n in range(50)], 2)
    assert len(started) < 50


@pytest.mark.anyio
async def test_async_limiter_bounds_holders() -> None:
    limiter = AsyncLimiter(2)
    peak = Peak()

    async def hold() -> None:
        async with limiter:
            peak.enter()
            await anyio.sleep(0.01)
            peak.leave()

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(hold)
    assert (limiter.total, peak.peak) == (2, 2)


def test_limiter_bounds_threads() -> None:
    limiter = Limiter(3)
    peak = Peak()

    def hold() -> None:
        with limiter:
            peak.enter()
            time.sleep(0.01)
            peak.leave()

    threads = [threading.Thread(target=hold) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (limiter.total, peak.peak) == (3, 3)


@pytest.mark.parametrize("bad", [0, -1])
def test_limits_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        Limiter(bad)
    with pytest.raises(ValueError):
        AsyncLimiter(bad)
    with pytest.raises(ValueError):
        gather_bounded([lambda: 1], bad)


@pytest.mark.anyio
async def test_aiterate_takes_iterables_and_async_iterables() -> None:
    async def agen() -> AsyncIterator[int]:
        for item in (1, 2):
            yield item

    assert [item async for item in aiterate(agen())] == [1, 2]
    assert [item async for item in aiterate([3, 4])] == [3, 4]
    assert list(iterate((5, 6))) == [5, 6]
