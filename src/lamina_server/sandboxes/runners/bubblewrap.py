"""The bubblewrap runner: each process of a sandbox is one ``bwrap`` invocation.

A sandbox is a keeper (:mod:`.keeper`, the overlay in a private mount namespace), a
:class:`~.cgroups.Limiter` and a synthesized ``/etc``. A spawn runs ``nsenter`` into the
keeper's mount namespace and ``bwrap`` from there, with new user (uid 1000 mapped to the
server's uid, every capability dropped, nested user namespaces disabled), pid, ipc, uts,
network and cgroup namespaces, the layout of :mod:`.layout`, and the seccomp filter of
:mod:`.seccomp`. ``bwrap --info-fd`` reports the sandbox's first process before it runs the
command (``--block-fd`` holds it): the runner moves it into the sandbox's cgroups, then lets
it go, so nothing the command starts escapes the limits. Killing that first process (pid 1
of the process's pid namespace) kills its whole tree.

Processes of one sandbox share the file system (the mount, through the keeper) and the
limits; each has its own pid, ipc, uts and network namespace. A command that does not exist
in the image raises :class:`RunnerError` from :meth:`BubblewrapSandbox.spawn`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from . import cgroups, fdio, layout, seccomp
from .base import RunnerError, SandboxSpec
from .keeper import Keeper
from .terminal import open_pty, set_size

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STOP_TIMEOUT = 10.0


class BubblewrapProcess:
    """A process in a sandbox, piped or on a terminal (see :class:`.base.Process`)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        init_pidfd: int,
        master: int | None,
    ) -> None:
        self._process = process
        self._init_pidfd = init_pidfd
        self._master = master
        self._stdin_closed = False

    @property
    def pid(self) -> int:
        return self._process.pid

    async def read_stdout(self) -> AsyncIterator[bytes]:
        if self._master is not None:
            while chunk := await fdio.read_chunk(self._master):
                yield chunk
            return
        assert self._process.stdout is not None
        while chunk := await self._process.stdout.read(fdio.CHUNK):
            yield chunk

    async def read_stderr(self) -> AsyncIterator[bytes]:
        if self._process.stderr is None:
            return
        while chunk := await self._process.stderr.read(fdio.CHUNK):
            yield chunk

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed:
            raise RunnerError("stdin is closed")
        try:
            if self._master is not None:
                await fdio.write_all(self._master, data)
                return
            assert self._process.stdin is not None
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, OSError) as error:
            self._stdin_closed = True
            raise RunnerError("the process no longer reads its stdin") from error

    async def close_stdin(self) -> None:
        if self._master is None and self._process.stdin is not None:
            self._process.stdin.close()
            self._stdin_closed = True

    def resize(self, cols: int, rows: int) -> None:
        if self._master is not None:
            set_size(self._master, cols, rows)

    async def wait(self) -> int:
        status = await self._process.wait()
        return 128 - status if status < 0 else status

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self._init_pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    def release(self) -> None:
        """Closes the descriptors the process held (after it exited and was read)."""
        for fd in (self._init_pidfd, self._master):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class BubblewrapSandbox:
    """A started sandbox (see :class:`.base.Sandbox`)."""

    def __init__(
        self,
        spec: SandboxSpec,
        bwrap: str,
        keeper: Keeper,
        limiter: cgroups.Limiter,
        host_etc: Path,
    ) -> None:
        self._spec = spec
        self._bwrap = bwrap
        self._keeper = keeper
        self._limiter = limiter
        self._layout = [
            *layout.image_args(spec.image, host_etc, spec.mountpoint),
            *("--bind", str(keeper.merged), spec.mountpoint, "--remount-ro", "/"),
        ]
        self._filter = seccomp.program()
        self._env_tool = self._find("env", {})
        self._setsid_tool = self._find("setsid", {})
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
        if self._find(argv[0], env) is None:
            raise RunnerError(f"command not found in the sandbox: {argv[0]}")
        prefix: list[str] = []
        if "PWD" not in env and self._env_tool is not None:
            prefix += [self._env_tool, "-u", "PWD"]  # bwrap itself exports PWD
        if terminal is not None and self._setsid_tool is not None:
            prefix += [self._setsid_tool, "--ctty", "--wait"]
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        filter_r, filter_w = os.pipe()
        os.write(filter_w, self._filter)
        os.close(filter_w)
        master = slave = None
        if terminal is not None:
            master, slave = open_pty(*terminal)
        command = [
            "nsenter",
            f"--mount={self._keeper.namespace}",
            "--",
            self._bwrap,
            *_ISOLATION,
            *self._layout,
            *("--chdir", cwd or self._spec.mountpoint),
            *(arg for name, value in env.items() for arg in ("--setenv", name, value)),
            *("--info-fd", str(info_w), "--block-fd", str(block_r)),
            *("--seccomp", str(filter_r), "--new-session", "--"),
            *prefix,
            *argv,
        ]
        stdio = asyncio.subprocess.PIPE if slave is None else slave
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=stdio,
                stdout=stdio,
                stderr=stdio,
                pass_fds=(info_w, block_r, filter_r),
                start_new_session=True,
            )
        finally:
            for fd in (info_w, block_r, filter_r, slave):
                if fd is not None:
                    os.close(fd)
        try:
            init_pid = await _child_pid(info_r)
            if init_pid is None:
                raise RunnerError(await _failure(process))
            init_pidfd = os.pidfd_open(init_pid)
            self._limiter.add(init_pid)
            os.write(block_w, b"go")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            if master is not None:
                os.close(master)
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        handle = BubblewrapProcess(process, init_pidfd, master)
        self._processes.add(handle)
        return handle

    def limit_exceeded(self) -> str | None:
        return self._limiter.exceeded()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for process in self._processes:
            process.kill()
        self._limiter.kill_all()
        for process in self._processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            process.release()
        self._processes.clear()
        await self._keeper.stop()
        await asyncio.to_thread(self._limiter.remove)

    def _find(self, command: str, env: Mapping[str, str]) -> str | None:
        """``command`` as the sandbox would find it (an absolute path), if it exists."""
        if "/" in command:
            candidates = [command]
        else:
            path = env.get("PATH", _DEFAULT_PATH)
            candidates = [f"{folder}/{command}" for folder in path.split(":") if folder]
        for candidate in candidates:
            absolute = os.path.normpath(os.path.join(self._spec.mountpoint, candidate))
            host = self._host_path(absolute)
            if host is not None and os.access(host, os.X_OK) and not host.is_dir():
                return absolute
        return None

    def _host_path(self, path: str) -> Path | None:
        mountpoint = self._spec.mountpoint.rstrip("/")
        if path == mountpoint or path.startswith(mountpoint + "/"):
            relative = os.path.relpath(path, mountpoint)
            return self._keeper.root / str(self._keeper.merged).lstrip("/") / relative
        return layout.host_path(self._spec.image, path)


_ISOLATION = (
    "--unshare-all",
    "--unshare-user",
    *("--uid", str(layout.UID), "--gid", str(layout.GID)),
    "--disable-userns",
    "--die-with-parent",
    *("--cap-drop", "ALL"),
    "--clearenv",
    *("--hostname", layout.HOSTNAME),
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


async def _failure(process: asyncio.subprocess.Process) -> str:
    _, stderr = await process.communicate()
    message = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
    return f"the sandbox process could not start: {message}"


class BubblewrapRunner:
    """Runs sandboxes with bubblewrap (see :class:`.base.Runner`); needs root."""

    name = "bubblewrap"

    def __init__(self, bwrap: str | None = None) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        self._host_etc: Path | None = None

    async def _etc(self) -> Path:
        """The ``/etc`` shown by host images, built on first use (removed at exit)."""
        if self._host_etc is None:
            directory = Path(tempfile.mkdtemp(prefix="lamina-etc-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            await asyncio.to_thread(layout.build_host_etc, directory)
            self._host_etc = directory
        return self._host_etc

    def check(self) -> str | None:
        if not os.access(self.bwrap, os.X_OK):
            return f"bubblewrap is not installed ({self.bwrap} not found)"
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                return f"{tool} (util-linux) is not installed"
        if os.geteuid() != 0:
            return "the bubblewrap runner must run as root (overlay mounts, cgroups)"
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "the kernel does not support overlay file systems"
        return None

    async def start(self, spec: SandboxSpec) -> BubblewrapSandbox:
        host_etc = await self._etc()
        limits = spec.limits
        try:
            limiter = cgroups.create(
                spec.sandbox_id, limits.memory_bytes, limits.max_processes, spec.scratch
            )
        except OSError as error:
            raise RunnerError(f"cannot set the sandbox's limits: {error}") from error
        try:
            keeper = await Keeper.start(spec)
        except BaseException:
            await asyncio.to_thread(limiter.remove)
            raise
        return BubblewrapSandbox(spec, self.bwrap, keeper, limiter, host_etc)

    async def reap(self, scratch_dirs: Sequence[Path]) -> None:
        for scratch in scratch_dirs:
            await asyncio.to_thread(cgroups.reap, scratch)
