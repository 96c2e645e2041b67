"""The sandbox agent (``agent.c``): building it, and the server's end of its control socket.

The agent is pid 1 of a bubblewrap sandbox and spawns the sandbox's commands on request
(``agent.c`` describes it and the wire). :func:`build` compiles it once per source version
with the host's C compiler (``cc -O2 -static``: it must run in any image, with no libc of
its own) into a cache folder, renamed into place when complete. :class:`Channel` is the
server's end of the ``SOCK_SEQPACKET`` socket pair: one reader per sandbox (an event-loop
reader callback) hands the agent's replies and exit statuses to whoever waits for them.
Whatever the agent sends is checked: it runs as the sandbox user, in reach of its processes.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import fdio
from .base import RunnerError

MAX_MESSAGE = 128 * 1024  # the agent's receive buffer (agent.c)
_SPAWN = struct.Struct("=cIBHHII")
_KILL = struct.Struct("=cIi")
_SPAWNED = struct.Struct("=cIiiB")
_EXIT = struct.Struct("=cIi")
_FD_SPACE = socket.CMSG_SPACE(array.array("i").itemsize)

# What failed when a command could not start (``agent.c``'s stages).
STAGE_EXEC, STAGE_CHDIR, STAGE_TERMINAL = 1, 2, 3


def cache_dir() -> Path:
    """Where built agents are kept: ``$XDG_CACHE_HOME/lamina``, else ``/var/cache/lamina``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "lamina" if base else Path("/var/cache/lamina")


def build(directory: Path) -> Path:
    """The agent binary for this source and machine, compiled into ``directory`` unless
    already there; :class:`RunnerError` (with the compiler's message) if it cannot be."""
    source = resources.files(__package__).joinpath("agent.c").read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = directory / f"agent-{digest}-{platform.machine()}"
    if os.access(target, os.X_OK):
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RunnerError("no C compiler (cc) to build the sandbox agent")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as work:
            (Path(work) / "agent.c").write_bytes(source)
            result = subprocess.run(
                [compiler, "-O2", "-static", "-o", "agent", "agent.c"],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RunnerError(
                    "cannot build the sandbox agent with a static libc "
                    f"(is libc6-dev installed?): {result.stderr.strip()}"
                )
            os.chmod(Path(work) / "agent", 0o755)
            os.replace(Path(work) / "agent", target)
    except OSError as error:
        raise RunnerError(f"cannot build the sandbox agent in {directory}: {error}") from error
    return target


@dataclass(frozen=True, slots=True)
class Started:
    """The agent's answer to a spawn: the sandbox pid, or why it failed; a terminal master."""

    pid: int
    error: int
    stage: int
    master: int | None


class Channel:
    """The server's end of one agent's control socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._replies: dict[int, asyncio.Future[Started]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._closed = False
        self._sends: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._receive)

    async def ready(self) -> bool:
        """Whether the agent started (False: the socket closed before it said so)."""
        with contextlib.suppress(ConnectionError):
            await asyncio.shield(self._ready)
            return True
        return False

    async def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        terminal: tuple[int, int] | None,
        fds: Sequence[int],
    ) -> tuple[int, Started, asyncio.Future[int]]:
        """Asks for a command; its id, the agent's answer and the future of its exit status."""
        strings = [cwd, *argv, *(f"{name}={value}" for name, value in env.items())]
        if any("\0" in string for string in strings):
            raise RunnerError("the command, its environment or its cwd contains a NUL byte")
        cols, rows = terminal or (0, 0)
        self._next_id += 1
        command_id = self._next_id
        body = b"".join(string.encode() + b"\0" for string in strings)
        header = _SPAWN.pack(
            b"S", command_id, terminal is not None, cols, rows, len(argv), len(env)
        )
        if len(header) + len(body) > MAX_MESSAGE:
            raise RunnerError(
                f"the command and its environment are too large (over {MAX_MESSAGE} bytes)"
            )
        reply = self._replies[command_id] = self._loop.create_future()
        exit_status = self._exits[command_id] = self._loop.create_future()
        try:
            await self._send(header + body, fds)
            started = await asyncio.shield(reply)
        except BaseException:
            self.kill(command_id)  # it may start anyway: nobody would wait for it
            self._exits.pop(command_id, None)
            raise
        finally:
            self._replies.pop(command_id, None)
        if started.error:
            self._exits.pop(command_id, None)
        return command_id, started, exit_status

    def kill(self, command_id: int, signal_number: int = signal.SIGKILL) -> None:
        """Kills the command's process group and session, if it still runs."""
        if self._closed or command_id not in self._exits:
            return
        message = _KILL.pack(b"K", command_id, signal_number)
        try:
            self._sock.send(message)
        except BlockingIOError:
            task = self._loop.create_task(self._send(message, ()))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        except OSError:
            self.close()

    def close(self) -> None:
        """Closes the socket: the agent kills every process of the sandbox and exits."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        gone = ConnectionError("the sandbox's agent has exited")
        if not self._ready.done():
            self._ready.set_exception(gone)
            self._ready.exception()  # retrieved: nobody may be waiting
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(gone)
        for exit_status in self._exits.values():
            if not exit_status.done():
                exit_status.set_result(128 + signal.SIGKILL)  # killed with its sandbox
        self._exits.clear()

    async def _send(self, message: bytes, fds: Sequence[int]) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        while True:
            if self._closed:
                raise RunnerError("the sandbox is stopped")
            try:
                self._sock.sendmsg([message], ancillary)
                return
            except BlockingIOError:
                await fdio.wait_writable(self._sock.fileno())
            except OSError as error:
                self.close()
                raise RunnerError("the sandbox's agent has exited") from error

    def _receive(self) -> None:
        while not self._closed:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(64, _FD_SPACE, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError:
                data, ancillary = b"", []
            fds = [
                fd
                for level, kind, payload in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                for fd in array.array("i", payload[: len(payload) - len(payload) % 4])
            ]
            if not data:
                self.close()
                return
            self._dispatch(data, fds)

    def _dispatch(self, data: bytes, fds: list[int]) -> None:
        kind = data[:1]
        if kind == b"R" and len(data) == 1 and not self._ready.done():
            self._ready.set_result(None)
        elif kind == b"P" and len(data) == _SPAWNED.size:
            _, command_id, pid, error, stage = _SPAWNED.unpack(data)
            reply = self._replies.get(command_id)
            if reply is not None and not reply.done():
                master = fds.pop() if fds and not error else None
                reply.set_result(Started(pid, error, stage, master))
        elif kind == b"E" and len(data) == _EXIT.size:
            _, command_id, status = _EXIT.unpack(data)
            exit_status = self._exits.pop(command_id, None)
            if exit_status is not None and not exit_status.done():
                exit_status.set_result(status)
        for fd in fds:  # anything the agent had no reason to send
            os.close(fd)
