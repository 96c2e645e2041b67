"""A command's output kept within a bound: its beginning and its end, the middle dropped.

A model reads a tool result whole, so ``run_command`` keeps at most ``limit`` bytes of each
stream: the first half and the last half of the limit, with the count of what was left out
in between.
"""

from __future__ import annotations

from collections import deque


class BoundedOutput:
    """Bytes written to one stream, bounded: ``text()`` is the head, a marker naming how many
    bytes were dropped, and the tail."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit // 2 - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail.append(data)
        self._tail_size += len(data)
        keep = self.limit - self.limit // 2
        while self._tail and self._tail_size - len(self._tail[0]) >= keep:
            self._tail_size -= len(self._tail.popleft())

    def text(self) -> str:
        """The kept bytes as text (bad UTF-8 replaced), with the marker when some were
        dropped."""
        tail = b"".join(self._tail)
        keep = self.limit - self.limit // 2
        tail = tail[-keep:] if keep else b""
        dropped = self.total - len(self._head) - len(tail)
        head = bytes(self._head).decode("utf-8", errors="replace")
        rest = tail.decode("utf-8", errors="replace")
        if dropped <= 0:
            return head + rest
        return f"{head}\n[... {dropped} bytes omitted ...]\n{rest}"
