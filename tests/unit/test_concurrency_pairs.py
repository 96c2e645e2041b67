"""The hand-written async/blocking pairs: bounded gathering, limiters, batchers, iteration."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from lamina._concurrency import (
    AsyncBatcher,
    AsyncLimiter,
    Batcher,
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


class Sends:
    """A batcher's send: records each batch, answers ``item * 10`` (a ValueError for a
    negative item)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def answer(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        return [ValueError(item) if item < 0 else item * 10 for item in items]


@pytest.mark.anyio
async def test_async_batcher_sends_what_queued_meanwhile_together() -> None:
    sends = Sends()
    gate = anyio.Event()

    async def send(items: list[int]) -> list[int | Exception]:
        if not sends.batches:
            sends.batches.append(items)
            await gate.wait()
            return [item * 10 for item in items]
        return sends.answer(items)

    batcher: AsyncBatcher[int, int] = AsyncBatcher(send)
    results: dict[int, int | Exception] = {}

    async def submit(item: int) -> None:
        try:
            results[item] = await batcher.submit(item)
        except ValueError as exc:
            results[item] = exc

    async with anyio.create_task_group() as group:
        group.start_soon(submit, 1)
        await anyio.wait_all_tasks_blocked()
        for item in (2, -3, 4):
            group.start_soon(submit, item)
        await anyio.wait_all_tasks_blocked()
        assert not batcher.idle
        gate.set()
    assert sends.batches == [[1], [2, -3, 4]]
    assert results[1] == 10 and results[2] == 20 and results[4] == 40
    assert isinstance(results[-3], ValueError)  # its own error, the others unharmed
    assert batcher.idle


@pytest.mark.anyio
async def test_async_batcher_hands_a_cancelled_senders_batch_back() -> None:
    """The caller sending a batch is cancelled: the other items of that batch go out in the
    next one; the cancelled one is not sent again."""
    sends = Sends()
    first_out = anyio.Event()
    hang = anyio.Event()

    async def send(items: list[int]) -> list[int | Exception]:
        sends.batches.append(items)
        if len(sends.batches) == 1:
            await first_out.wait()
        elif len(sends.batches) == 2:
            await hang.wait()  # never set: hangs until its sender is cancelled
        return [item * 10 for item in items]

    batcher: AsyncBatcher[int, int] = AsyncBatcher(send)
    results: dict[int, int] = {}

    async def submit(item: int, scope: anyio.CancelScope) -> None:
        with scope:
            results[item] = await batcher.submit(item)

    second_sender = anyio.CancelScope()
    with anyio.fail_after(10):  # an item not handed back would wait for ever
        async with anyio.create_task_group() as group:
            group.start_soon(submit, 1, anyio.CancelScope())
            await anyio.wait_all_tasks_blocked()
            group.start_soon(submit, 2, second_sender)
            group.start_soon(submit, 3, anyio.CancelScope())
            await anyio.wait_all_tasks_blocked()
            first_out.set()  # [1] answers; 2 sends [2, 3], which hangs
            await anyio.wait_all_tasks_blocked()
            assert sends.batches == [[1], [2, 3]]
            second_sender.cancel()
    assert sends.batches == [[1], [2, 3], [3]]
    assert results == {1: 10, 3: 30}
    assert batcher.idle


def test_batcher_sends_what_queued_meanwhile_together() -> None:
    sends = Sends()

    def send(items: list[int]) -> list[int | Exception]:
        if not sends.batches:
            sends.batches.append(items)
            deadline = time.monotonic() + 10
            while len(batcher._queue) < 3 and time.monotonic() < deadline:
                time.sleep(0.001)  # until the three others wait
            return [item * 10 for item in items]
        return sends.answer(items)

    batcher: Batcher[int, int] = Batcher(send)
    results: dict[int, int | Exception] = {}

    def submit(item: int) -> None:
        try:
            results[item] = batcher.submit(item)
        except ValueError as exc:
            results[item] = exc

    first = threading.Thread(target=submit, args=(1,))
    first.start()
    while not sends.batches:
        time.sleep(0.001)
    others = [threading.Thread(target=submit, args=(item,)) for item in (2, -3, 4)]
    for thread in others:
        thread.start()
    for thread in (first, *others):
        thread.join(10)
    assert sends.batches[0] == [1] and sorted(sends.batches[1]) == [-3, 2, 4]
    assert results[1] == 10 and results[2] == 20 and results[4] == 40
    assert isinstance(results[-3], ValueError)
    assert batcher.idle
