"""Non-blocking reads and writes on raw file descriptors, driven by the asyncio event loop."""

from __future__ import annotations

import asyncio
import errno
import os

# Reads of up to 1 MiB (less a little, so that a chunk with a frame's header stays within the
# 1 MiB message limit of common websocket clients): few, large reads stream fastest.
CHUNK = 1024 * 1024 - 4096


async def _ready(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def read_chunk(fd: int) -> bytes:
    """What ``fd`` (non-blocking) has, at most :data:`CHUNK` bytes; ``b""`` at end of file.

    ``EIO`` counts as end of file: it is how a terminal's master side reports that every
    process holding the other side has gone.
    """
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await _ready(fd, write=False)
        except OSError as error:
            if error.errno == errno.EIO:
                return b""
            raise


async def wait_writable(fd: int) -> None:
    """Returns once ``fd`` can be written to."""
    await _ready(fd, write=True)


async def write_all(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to the non-blocking ``fd``."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(fd, write=True)
