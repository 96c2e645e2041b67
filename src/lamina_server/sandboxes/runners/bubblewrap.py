"""The bubblewrap runner: one ``bwrap`` per sandbox, with an agent inside spawning commands.

A sandbox is a :class:`~.cgroups.Limiter`, a synthesized ``/etc`` and one ``bwrap``,
started in a private mount namespace holding the sandbox's overlay (:mod:`.overlay`), with
new user (uid 1000 mapped to the server's uid, every capability dropped, nested user
namespaces disabled), pid, ipc, uts, network and cgroup namespaces, the layout of
:mod:`.layout` and the seccomp filter of :mod:`.seccomp`. It runs the agent (:mod:`.agent`, bound read-only at ``/.lamina/agent``) as the sandbox's
pid 1. ``bwrap --info-fd`` reports the agent before it runs (``--block-fd`` holds it): the
runner moves it into the sandbox's cgroups, then lets it go, so nothing the sandbox starts
escapes the limits.

A spawn is one message on the agent's control socket: the agent forks, and the child
execs the command in a session of its own, with pipes the server made (passed over the
socket) or a terminal the agent opened on the sandbox's ``/dev/ptmx``. All processes of a
sandbox share its file system, limits and pid, ipc, uts and network namespaces. A command
that does not exist in the image raises :class:`RunnerError` from
:meth:`BubblewrapSandbox.spawn`. Closing the control socket (:meth:`BubblewrapSandbox.stop`,
or the server's death) makes the agent kill everything and exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from . import agent, cgroups, child, fdio, layout, overlay, seccomp
from .base import INPUT_DIR, RunnerError, SandboxSpec
from .terminal import set_size

_STOP_TIMEOUT = 10.0
_AGENT_PATH = "/.lamina/agent"
_PIPE_SIZE = 1024 * 1024
_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR, errno.EACCES)


class BubblewrapProcess:
    """A process in a sandbox, piped or on a terminal (see :class:`.base.Process`)."""

    def __init__(
        self,
        channel: agent.Channel,
        command_id: int,
        pid: int,
        exit_status: asyncio.Future[int],
        stdio: tuple[int, int, int | None],
        terminal: bool,
    ) -> None:
        self._channel = channel
        self._id = command_id
        self._pid = pid
        self._exit = exit_status
        self._stdin: int | None = stdio[0]
        self._stdout: int | None = stdio[1]
        self._stderr: int | None = stdio[2]
        self._terminal = terminal

    @property
    def pid(self) -> int:
        """The process's pid in the sandbox."""
        return self._pid

    async def read_stdout(self) -> AsyncIterator[bytes]:
        try:
            while self._stdout is not None and (chunk := await fdio.read_chunk(self._stdout)):
                yield chunk
        finally:
            if self._terminal:
                self.release()  # the terminal's master carries both ways: the process is gone
            else:
                fd, self._stdout = self._stdout, None
                _close(fd)

    async def read_stderr(self) -> AsyncIterator[bytes]:
        try:
            while self._stderr is not None and (chunk := await fdio.read_chunk(self._stderr)):
                yield chunk
        finally:
            fd, self._stderr = self._stderr, None
            _close(fd)

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin is None:
            raise RunnerError("stdin is closed")
        try:
            await fdio.write_all(self._stdin, data)
        except OSError as error:
            if not self._terminal:
                await self.close_stdin()
            raise RunnerError("the process no longer reads its stdin") from error

    async def close_stdin(self) -> None:
        if not self._terminal:
            fd, self._stdin = self._stdin, None
            _close(fd)

    def resize(self, cols: int, rows: int) -> None:
        if self._terminal and self._stdin is not None:
            set_size(self._stdin, cols, rows)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def kill(self) -> None:
        self._channel.kill(self._id)

    def release(self) -> None:
        """Closes the descriptors the process still holds."""
        fds = {self._stdin, self._stdout, self._stderr}
        self._stdin = self._stdout = self._stderr = None
        for fd in fds:
            _close(fd)


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


class BubblewrapSandbox:
    """A started sandbox (see :class:`.base.Sandbox`)."""

    def __init__(
        self,
        spec: SandboxSpec,
        limiter: cgroups.Limiter,
        bwrap: child.Child,
        channel: agent.Channel,
    ) -> None:
        self._spec = spec
        self._limiter = limiter
        self._bwrap = bwrap
        self._channel = channel
        self._processes: set[BubblewrapProcess] = set()
        self._stopped = False

    @property
    def spec(self) -> SandboxSpec:
        return self._spec

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        terminal: tuple[int, int] | None = None,
    ) -> BubblewrapProcess:
        if self._stopped:
            raise RunnerError("the sandbox is stopped")
        if not argv:
            raise RunnerError("no command given")
        cwd = cwd or self._spec.mountpoint
        ours: list[int] = []  # the server's ends, non-blocking
        theirs: list[int] = []  # the child's ends, sent to the agent
        try:
            if terminal is None:
                for index in range(3):
                    read_end, write_end = os.pipe()
                    if index > 0:
                        with contextlib.suppress(OSError):  # best effort: a bounded resource
                            fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
                    ours.append(write_end if index == 0 else read_end)
                    theirs.append(read_end if index == 0 else write_end)
                for fd in ours:
                    os.set_blocking(fd, False)
            try:
                command_id, started, exit_status = await self._channel.spawn(
                    argv, env, cwd, terminal, theirs
                )
            except ConnectionError as error:
                raise RunnerError("the sandbox's agent has exited") from error
            finally:
                for fd in theirs:
                    os.close(fd)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        if started.error:
            for fd in ours:
                os.close(fd)
            raise RunnerError(_start_failure(argv[0], cwd, started))
        if terminal is None:
            stdio: tuple[int, int, int | None] = (ours[0], ours[1], ours[2])
        else:
            if started.master is None:
                raise RunnerError("the sandbox's agent sent no terminal")
            os.set_blocking(started.master, False)
            stdio = (started.master, started.master, None)
        handle = BubblewrapProcess(
            self._channel, command_id, started.pid, exit_status, stdio, terminal is not None
        )
        self._processes.add(handle)
        exit_status.add_done_callback(lambda _: self._processes.discard(handle))
        return handle

    def limit_exceeded(self) -> str | None:
        return self._limiter.exceeded()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._channel.close()
        self._limiter.kill_all()
        try:
            await asyncio.wait_for(self._bwrap.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            self._bwrap.kill()
            await self._bwrap.wait()
        for process in self._processes:
            process.release()
        self._processes.clear()
        await asyncio.to_thread(self._limiter.remove)


def _start_failure(command: str, cwd: str, started: agent.Started) -> str:
    reason = os.strerror(started.error)
    if started.stage == agent.STAGE_EXEC and started.error in _NOT_FOUND:
        return f"command not found in the sandbox: {command}"
    if started.stage == agent.STAGE_EXEC:
        return f"cannot run {command} in the sandbox: {reason}"
    if started.stage == agent.STAGE_CHDIR:
        return f"cannot change to {cwd} in the sandbox: {reason}"
    if started.stage == agent.STAGE_TERMINAL:
        return f"cannot open a terminal in the sandbox: {reason}"
    return f"cannot start {command} in the sandbox: {reason}"


_ISOLATION = (
    "--unshare-all",
    "--unshare-user",
    *("--uid", str(layout.UID), "--gid", str(layout.GID)),
    "--disable-userns",
    "--die-with-parent",
    *("--cap-drop", "ALL"),
    "--clearenv",
    *("--hostname", layout.HOSTNAME),
    "--as-pid-1",  # the agent is init: no bwrap reaper in between
)


async def _child_pid(info: int) -> int | None:
    """The pid bwrap reports on its ``--info-fd`` (None: it failed before the sandbox ran)."""
    os.set_blocking(info, False)
    data = b""
    while chunk := await fdio.read_chunk(info):
        data += chunk
    if not data:
        return None
    pid: int = json.loads(data)["child-pid"]
    return pid


class BubblewrapRunner:
    """Runs sandboxes with bubblewrap (see :class:`.base.Runner`); needs root.

    ``cache_dir`` receives the built agent (default :func:`.agent.cache_dir`).
    """

    name = "bubblewrap"

    def __init__(self, bwrap: str | None = None, cache_dir: Path | None = None) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        self.cache_dir = cache_dir or agent.cache_dir()
        self._host_etc: Path | None = None
        self._agent: Path | None = None
        self._filter = seccomp.program()

    async def _etc(self) -> Path:
        """The ``/etc`` shown by host images, built on first use (removed at exit)."""
        if self._host_etc is None:
            directory = Path(tempfile.mkdtemp(prefix="lamina-etc-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            await asyncio.to_thread(layout.build_host_etc, directory)
            self._host_etc = directory
        return self._host_etc

    def _built_agent(self) -> Path:
        if self._agent is None:
            self._agent = agent.build(self.cache_dir)
        return self._agent

    def check(self) -> str | None:
        if not os.access(self.bwrap, os.X_OK):
            return f"bubblewrap is not installed ({self.bwrap} not found)"
        for tool in ("unshare", "mount"):
            if shutil.which(tool) is None:
                return f"{tool} (util-linux) is not installed"
        if os.geteuid() != 0:
            return "the bubblewrap runner must run as root (overlay mounts, cgroups)"
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "the kernel does not support overlay file systems"
        try:
            self._built_agent()
        except RunnerError as error:
            return str(error)
        return None

    async def start(self, spec: SandboxSpec) -> BubblewrapSandbox:
        host_etc = await self._etc()
        agent_binary = self._agent
        if agent_binary is None:
            agent_binary = await asyncio.to_thread(self._built_agent)
        limits = spec.limits
        try:
            limiter = cgroups.create(
                spec.sandbox_id, limits.memory_bytes, limits.max_processes, spec.scratch
            )
        except OSError as error:
            raise RunnerError(f"cannot set the sandbox's limits: {error}") from error
        try:
            bwrap, channel = await self._launch(spec, limiter, host_etc, agent_binary)
        except BaseException:
            await asyncio.to_thread(limiter.remove)
            raise
        return BubblewrapSandbox(spec, limiter, bwrap, channel)

    async def _launch(
        self,
        spec: SandboxSpec,
        limiter: cgroups.Limiter,
        host_etc: Path,
        agent_binary: Path,
    ) -> tuple[child.Child, agent.Channel]:
        """Starts the sandbox's bwrap and its agent, in the sandbox's limits."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        filter_r, filter_w = os.pipe()
        os.write(filter_w, self._filter)
        os.close(filter_w)
        bwrap_command = [
            self.bwrap,
            *_ISOLATION,
            *layout.image_args(spec.image, host_etc, spec.mountpoint),
            *("--bind", str(overlay.merged(spec)), spec.mountpoint),
            *("--ro-bind", str(agent_binary), _AGENT_PATH),
            *(("--ro-bind", str(spec.inputs), INPUT_DIR) if spec.inputs else ()),
            *("--remount-ro", "/", "--chdir", "/"),
            *("--info-fd", str(info_w), "--block-fd", str(block_r)),
            *("--seccomp", str(filter_r), "--new-session", "--"),
            *(_AGENT_PATH, str(theirs.fileno())),
        ]
        command = overlay.command(spec, bwrap_command)
        log_path = spec.scratch / "bwrap.log"
        try:
            with log_path.open("wb") as log:
                bwrap = child.start(
                    command, stderr=log, pass_fds=(info_w, block_r, filter_r, theirs.fileno())
                )
        except BaseException:
            ours.close()
            raise
        finally:
            for fd in (info_w, block_r, filter_r):
                os.close(fd)
            theirs.close()
        channel = agent.Channel(ours)
        # Joining a cgroup costs an RCU grace period on cgroup v1 (10-20 ms): bwrap joins
        # while it sets the sandbox up, so that the agent it forks is born inside, and adding
        # the agent afterwards (to be sure) finds the kernel's fast path.
        early = asyncio.ensure_future(asyncio.to_thread(limiter.add, bwrap.pid))
        try:
            agent_pid = await _child_pid(info_r)
            with contextlib.suppress(OSError):  # bwrap already gone: reported below
                await early
            if agent_pid is not None:
                await asyncio.to_thread(limiter.add, agent_pid)
                os.write(block_w, b"go")
            if agent_pid is None or not await channel.ready():
                await bwrap.wait()
                message = log_path.read_text(errors="replace").strip()
                raise RunnerError(
                    "the sandbox could not start: "
                    + (message or f"bwrap exit status {bwrap.returncode}")
                )
        except BaseException:
            early.cancel()
            channel.close()
            bwrap.kill()
            await bwrap.wait()
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        return bwrap, channel

    async def reap(self, scratch_dirs: Sequence[Path]) -> None:
        for scratch in scratch_dirs:
            await asyncio.to_thread(cgroups.reap, scratch)
