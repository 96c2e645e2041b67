"""The progress bar of a transfer (bytes and files), on stderr.

Shown when stderr is a terminal (rich's rules: ``FORCE_COLOR`` or ``TTY_COMPATIBLE=1`` force
it), or as ``--progress/--no-progress`` say. The SDK's callbacks only store the latest
snapshot (one assignment per call); the bar reads it when it redraws, four times a second, so
a transfer of many small files pays next to nothing for its bar.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lamina.cli.output import human_size, note
from lamina.models.transfers import TransferProgress


class _SnapshotProgress(Progress):
    """A rich ``Progress`` that brings its one task up to date when it redraws."""

    def __init__(self, display: TransferDisplay, console: Console) -> None:
        self._display = display  # before the base class draws the first frame
        super().__init__(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[files]}"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )

    def get_renderable(self) -> RenderableType:
        self._display.sync()
        return super().get_renderable()


class TransferDisplay:
    """Counts a transfer's bytes and files and draws them; a context manager.

    ``update(snapshot)`` is the SDK's ``progress=`` callback of folder transfers;
    ``add_bytes(n)`` and ``file_done()`` count a transfer the command drives itself.
    """

    def __init__(self, description: str, enabled: bool | None) -> None:
        self._description = description
        self._console = Console(stderr=True)
        self.enabled = self._console.is_terminal if enabled is None else enabled
        self.latest = TransferProgress(0, 0, 0, 0)
        self._bytes_done = 0
        self._files_done = 0
        self._bytes_total = 0
        self._files_total = 0
        self._progress: _SnapshotProgress | None = None
        self._task: TaskID | None = None
        self._started = 0.0

    def expect(self, bytes_total: int, files_total: int) -> None:
        """The size of a transfer the command counts itself."""
        self._bytes_total, self._files_total = bytes_total, files_total
        self.latest = TransferProgress(self._bytes_done, bytes_total, self._files_done, files_total)

    def update(self, snapshot: TransferProgress) -> None:
        self.latest = snapshot

    def add_bytes(self, count: int) -> None:
        self._bytes_done += count
        self.latest = TransferProgress(
            self._bytes_done, self._bytes_total, self._files_done, self._files_total
        )

    def file_done(self) -> None:
        self._files_done += 1
        self.add_bytes(0)

    def sync(self) -> None:
        """Copy the latest snapshot into the bar's task (called as the bar redraws)."""
        if self._progress is None or self._task is None:
            return
        latest = self.latest
        self._progress.update(
            self._task,
            completed=latest.bytes_done,
            total=latest.bytes_total or None,
            files=f"{latest.files_done}/{latest.files_total} files",
        )

    def __enter__(self) -> TransferDisplay:
        self._started = time.monotonic()
        if self.enabled:
            self._progress = _SnapshotProgress(self, self._console)
            self._task = self._progress.add_task(self._description, total=None, files="")
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.refresh()  # the last snapshot, drawn
            self._progress.stop()
        if exc is None:
            latest = self.latest
            seconds = time.monotonic() - self._started
            files = f"{latest.files_done} file{'s' if latest.files_done != 1 else ''}"
            note(
                f"{self._description}: {files}, {human_size(latest.bytes_done)} in {seconds:.1f} s"
            )
