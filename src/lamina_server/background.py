"""Work a service runs in the background, in a task group of the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc


class TaskHost:
    """A task group that :meth:`serve` keeps open until cancelled (the app's lifespan starts
    it); :meth:`start_soon` runs a task in it. ``name`` says whose, in the error of a task
    started while it does not serve."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: anyio.abc.TaskGroup | None = None

    @property
    def serving(self) -> bool:
        return self._tasks is not None

    async def serve(
        self, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Runs the tasks until cancelled, which cancels them."""
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tasks = None

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tasks is None:
            raise RuntimeError(f"the {self.name} is not serving")
        self._tasks.start_soon(fn, *args)
