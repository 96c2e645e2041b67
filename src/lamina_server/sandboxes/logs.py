"""A sandbox's log: its main command's stdout and stderr merged in the order they were
produced, and the server's own notes about the sandbox, in one append-only file that readers
follow while the sandbox runs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

READ_SIZE = 64 * 1024
NOTE_PREFIX = b"lamina: "


class SandboxLog:
    """The log of a live sandbox. :meth:`write` appends and wakes every follower;
    :meth:`close` ends the log (followers read what is left, then stop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._changed = anyio.Event()
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._wake()

    def note(self, text: str) -> None:
        """A line of the server's own, e.g. why a file was not captured."""
        self.write(NOTE_PREFIX + text.encode("utf-8", "replace") + b"\n")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[bytes]:
        """The log from its start, then what is written, until it is closed."""
        with open(self.path, "rb") as reader:
            while True:
                changed = self._changed
                data = reader.read(READ_SIZE)
                if data:
                    yield data
                elif self.closed:
                    rest = reader.read()
                    if rest:
                        yield rest
                    return
                else:
                    await changed.wait()


async def read_finished(path: Path) -> AsyncIterator[bytes]:
    """The whole log of a finished sandbox."""
    with open(path, "rb") as reader:
        while data := await anyio.to_thread.run_sync(reader.read, READ_SIZE):
            yield data
