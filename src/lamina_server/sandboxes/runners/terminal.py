"""Pseudo-terminals for sandbox processes that asked for one."""

from __future__ import annotations

import fcntl
import os
import struct
import termios


def open_pty(cols: int, rows: int) -> tuple[int, int]:
    """A new terminal of the given size: ``(master, slave)``, the master non-blocking."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    set_size(master, cols, rows)
    return master, slave


def set_size(master: int, cols: int, rows: int) -> None:
    """Resizes the terminal; its foreground process group receives ``SIGWINCH``."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
