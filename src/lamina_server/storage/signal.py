"""A counter every server process on one machine shares, bumped after any change to who may
do what (a key revoked, a principal deleted, a membership, group or policy changed).

Each request authenticates its key and is judged by policies. Reading that from the database
on every request costs a query on the hot path; caching it would leave a window in which a
revoked key still works in some process. The signal closes the window without the query: a
process caches what it read together with the counter's value, and uses the cache only while
the counter is unchanged. A change bumps the counter after its transaction commits, before its
request is answered, so the very next request in any process sees it.

The counter is eight bytes of a file in the data directory, mapped into every process: reading
it costs no system call. It exists only with the embedded SQLite database (one machine by
design); replicas on PostgreSQL have no shared memory and read the database instead.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class ChangeSignal:
    """The shared counter at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def value(self) -> int:
        """The counter now (a torn read can only look like a change: a spurious reload)."""
        value: int = struct.unpack_from(_FORMAT, self._map)[0]
        return value

    def bump(self) -> None:
        """Tells every process that what it cached may be stale."""
        with open(self.path, "rb") as lock:  # one writer at a time, across processes
            fcntl.flock(lock, fcntl.LOCK_EX)
            struct.pack_into(_FORMAT, self._map, 0, self.value() + 1)
            fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
