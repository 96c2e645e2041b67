"""Terminals of sandbox processes: the agent opens them in the sandbox, the server resizes."""

from __future__ import annotations

import fcntl
import struct
import termios


def set_size(master: int, cols: int, rows: int) -> None:
    """Resizes the terminal; its foreground process group receives ``SIGWINCH``."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
