"""``lamina shell`` through a real terminal: the command runs on a pseudo-terminal (its
controlling terminal, as in a user's terminal emulator); the test types keys into it, reads
what it shows, resizes the window and presses Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator

import pytest

from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.cli.conftest import SRC, Invoke

_CANNOT_RUN = BubblewrapRunner().check()
pytestmark = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """The master side of a pseudo-terminal running ``lamina``: type, read, resize."""

    def __init__(self, args: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: its stdin/stdout/stderr are the terminal
            try:
                set_size(0, rows, cols)
                os.execve(sys.executable, [sys.executable, "-m", "lamina.cli", *args], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.screen = b""
        self.exit_status: int | None = None

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the other side closed: the command exited
            return False
        if not data:
            return False
        self.screen += data
        return True

    def wait_for(self, pattern: bytes, timeout: float = 60) -> re.Match[bytes]:
        """Read until ``pattern`` shows after what was read so far (a regex)."""
        start = len(self.screen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.screen[start:])
            if found:
                return found
            if not self._read(0.2):
                break
        found = re.search(pattern, self.screen[start:])
        assert found, f"{pattern!r} not shown; the screen ends with {self.screen[-2000:]!r}"
        return found

    def resize(self, rows: int, cols: int) -> None:
        """Change the window: the kernel sends SIGWINCH to the command, as a terminal does."""
        set_size(self.fd, rows, cols)

    def wait(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
                    pass
                self.exit_status = os.waitstatus_to_exitcode(status)
                return self.exit_status
        raise AssertionError(f"lamina shell did not exit; screen: {self.screen[-2000:]!r}")

    def close(self) -> None:
        if self.exit_status is None:
            with_suppress_kill(self.pid)
        os.close(self.fd)


def with_suppress_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@pytest.fixture
def terminal_env(cli_env: dict[str, str | None]) -> dict[str, str]:
    env = {name: value for name, value in {**os.environ, **cli_env}.items() if value is not None}
    env["PYTHONPATH"] = str(SRC)
    env["TERM"] = "xterm"
    return env


@pytest.fixture
def shell(terminal_env: dict[str, str], repository: str) -> Iterator[Terminal]:
    term = Terminal(["shell", repository], terminal_env, rows=30, cols=100)
    try:
        # then the first prompt, which the shell printed before the terminal attached
        term.wait_for(rb"(?s)Connected to sandbox \S+;.*\$ ", timeout=90)
        yield term
    finally:
        term.close()


def test_shell_types_resizes_interrupts_and_commits(
    shell: Terminal, lamina: Invoke, repository: str
) -> None:
    shell.type(b"stty size; tty\r")
    shell.wait_for(rb"30 100\r\n/dev/pts/\d+")

    shell.resize(40, 120)
    time.sleep(0.5)  # the resize reaches the sandbox before the next line does
    shell.type(b"stty size\r")
    shell.wait_for(rb"40 120")

    # Ctrl-C reaches the remote shell: the sleep stops, the shell (and lamina) carry on
    shell.type(b"sleep 30\r")
    time.sleep(1)
    started = time.monotonic()
    shell.type(b"\x03")
    shell.type(b"echo after-$((40 + 2))\r")
    shell.wait_for(rb"after-42", timeout=20)
    assert time.monotonic() - started < 20

    shell.type(b"echo typed > /sandbox/from-shell.txt; exit\r")
    assert shell.wait() == 0
    assert re.search(rb"shell exited with code 0.*\r?\n.*Committed [0-9a-f]+", shell.screen)
    assert lamina("cat", f"{repository}/from-shell.txt").stdout == "typed\n"


def test_shell_exit_code_is_lamina_s_and_a_failure_lands_nothing(
    shell: Terminal, lamina: Invoke, repository: str
) -> None:
    shell.type(b"echo lost > /sandbox/lost.txt; exit 3\r")
    assert shell.wait() == 3
    assert b"nothing committed" in shell.screen
    assert lamina("ls", repository).stdout == ""
