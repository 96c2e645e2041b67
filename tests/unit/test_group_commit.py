"""GroupCommit: batching, per-item outcomes, errors, and cancellation."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from lamina_server.storage.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class Recorder:
    """A flush that doubles numbers, records its batches and can be held open."""

    def __init__(self, unlucky: int | None = None) -> None:
        self.unlucky = unlucky
        self.batches: list[list[int]] = []
        self.release = anyio.Event()
        self.release.set()

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.unlucky in items:
            raise ValueError("unlucky batch")
        return [item * 2 for item in items]


async def test_everyone_waiting_during_a_batch_goes_in_the_next_one() -> None:
    recorder = Recorder()
    recorder.release = anyio.Event()
    group: GroupCommit[int, int] = GroupCommit(recorder.flush)
    results: dict[int, int] = {}

    async def submit(item: int) -> None:
        results[item] = await group.submit(item)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(submit, 0)
        await anyio.sleep(0.01)  # the first batch is running and held
        for item in range(1, 20):
            tasks.start_soon(submit, item)
        await anyio.sleep(0.01)
        recorder.release.set()
    assert recorder.batches == [[0], list(range(1, 20))]
    assert results == {item: item * 2 for item in range(20)}
    assert group.idle


async def test_a_failed_flush_fails_its_batch_only() -> None:
    recorder = Recorder(unlucky=13)
    recorder.release = anyio.Event()
    group: GroupCommit[int, int] = GroupCommit(recorder.flush)
    outcomes: dict[int, object] = {}

    async def submit(item: int) -> None:
        try:
            outcomes[item] = await group.submit(item)
        except ValueError as exc:
            outcomes[item] = str(exc)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(submit, 0)
        await anyio.sleep(0.01)  # batch [0] is held; 13 and 1 queue up behind it
        tasks.start_soon(submit, 13)
        tasks.start_soon(submit, 1)
        await anyio.sleep(0.01)
        recorder.release.set()
    await submit(2)
    assert recorder.batches == [[0], [13, 1], [2]]
    assert outcomes == {0: 0, 13: "unlucky batch", 1: "unlucky batch", 2: 4}


async def test_a_cancelled_leader_still_finishes_its_batch_for_the_others() -> None:
    recorder = Recorder()
    recorder.release = anyio.Event()
    group: GroupCommit[int, int] = GroupCommit(recorder.flush)
    results: dict[int, int] = {}
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            results[1] = await group.submit(1)

    async def follow() -> None:
        results[2] = await group.submit(2)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lead)
        await anyio.sleep(0.01)  # batch [1] is running, held
        tasks.start_soon(follow)
        await anyio.sleep(0.01)
        leader.cancel()
        await anyio.sleep(0.01)
        assert recorder.batches == [[1]]  # still running: the cancel waits for the batch
        recorder.release.set()
    assert recorder.batches == [[1], [2]]  # the batch ran whole; then the next one
    assert results[2] == 4
    assert results.get(1, 2) == 2  # the leader has its outcome, or was cancelled


async def test_a_waiter_cancelled_before_its_batch_leaves_no_trace() -> None:
    recorder = Recorder()
    recorder.release = anyio.Event()
    group: GroupCommit[int, int] = GroupCommit(recorder.flush)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(group.submit, 1)
        await anyio.sleep(0.01)
        with anyio.move_on_after(0.01):
            await group.submit(2)  # queued behind the held batch, then given up
        recorder.release.set()
    assert recorder.batches == [[1]]
    assert group.idle
