"""Starting a sandbox's bubblewrap cheaply, whatever the size of the server.

The server runs on uvloop, whose subprocesses are started with ``fork()``: its cost grows with
the server's memory (the page tables are copied), 15 ms and more for a server of a few hundred
MiB. :mod:`subprocess` starts a child with ``vfork()`` instead, which copies nothing, so a
sandbox is started with it and awaited through a pidfd on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Sequence
from typing import IO

_POLL = 0.01  # seconds between checks where the system has no pidfd


class Child:
    """A started process: its pid, kill, and an awaitable exit status."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    async def wait(self) -> int:
        """The exit status, once the process has ended (the event loop keeps running)."""
        while self._popen.poll() is None:
            try:
                pidfd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):
                await asyncio.sleep(_POLL)
                continue
            try:
                loop = asyncio.get_running_loop()
                ended = asyncio.Event()
                loop.add_reader(pidfd, ended.set)
                try:
                    if self._popen.poll() is None:
                        await ended.wait()
                finally:
                    loop.remove_reader(pidfd)
            finally:
                os.close(pidfd)
        return self._popen.wait()


def start(argv: Sequence[str], *, stderr: IO[bytes], pass_fds: Sequence[int]) -> Child:
    """Starts ``argv`` in a session of its own, stdin and stdout on ``/dev/null``."""
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
    return Child(popen)
