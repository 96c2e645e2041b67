"""Memory and process-count limits for one sandbox: cgroup v1, cgroup v2, or rlimits.

:func:`create` detects at run time what this host offers and makes ``lamina/<sandbox_id>``
groups: with the v1 ``memory`` and ``pids`` controllers mounted and writable (a v1 or hybrid
host) it uses them, nested under this process's own group; otherwise on a cgroup2 host it
uses ``memory.max``/``pids.max`` under ``<cgroup2>/lamina``. Where no cgroup is writable it
falls back to per-process rlimits (``RLIMIT_AS`` and ``RLIMIT_NPROC``), which bound each
process rather than the sandbox as a whole.

The groups a sandbox made are listed in its scratch directory, so :func:`reap` can clean up
after a server that crashed.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
from pathlib import Path

_RECORD = "cgroups"
_V1_CONTROLLERS = ("memory", "pids")


class Limiter:
    """The limits of one sandbox; :meth:`add` puts a process under them before it runs."""

    mechanism = "rlimit"

    def __init__(self, memory_bytes: int, max_processes: int) -> None:
        self.memory_bytes = memory_bytes
        self.max_processes = max_processes

    def add(self, pid: int) -> None:
        """Bounds ``pid`` (and what it starts later) by this sandbox's limits."""
        resource.prlimit(pid, resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.prlimit(pid, resource.RLIMIT_NPROC, (self.max_processes, self.max_processes))

    def exceeded(self) -> str | None:
        """``"memory"`` after an out-of-memory kill, ``"processes"`` after a refused fork."""
        return None

    def kill_all(self) -> None:
        """Kills every process in the sandbox's groups (nothing to do for rlimits)."""

    def remove(self) -> None:
        """Kills what is left and removes the groups; idempotent."""


class CgroupLimiter(Limiter):
    """Limits through one group per controller (v1) or one unified group (v2)."""

    def __init__(
        self, memory_bytes: int, max_processes: int, memory: Path, pids: Path, version: int
    ) -> None:
        super().__init__(memory_bytes, max_processes)
        self.memory = memory
        self.pids = pids
        self.version = version
        self.mechanism = f"cgroup v{version}"

    @property
    def groups(self) -> list[Path]:
        return sorted({self.memory, self.pids})

    def add(self, pid: int) -> None:
        for group in self.groups:
            (group / "cgroup.procs").write_text(str(pid))

    def exceeded(self) -> str | None:
        if self.version == 2:
            if _counter(self.memory / "memory.events", "oom_kill") > 0:
                return "memory"
        elif _counter(self.memory / "memory.oom_control", "oom_kill") > 0:
            return "memory"
        if _counter(self.pids / "pids.events", "max") > 0:
            return "processes"
        return None

    def kill_all(self) -> None:
        for group in self.groups:
            _kill_group(group)

    def remove(self) -> None:
        for group in self.groups:
            _remove_group(group)


def create(sandbox_id: str, memory_bytes: int, max_processes: int, scratch: Path) -> Limiter:
    """The best limiter this host allows, its groups made and recorded in ``scratch``."""
    groups = _v1_groups(sandbox_id) or _v2_groups(sandbox_id)
    if groups is None:
        return Limiter(memory_bytes, max_processes)
    memory, pids, version = groups
    limiter = CgroupLimiter(memory_bytes, max_processes, memory, pids, version)
    (scratch / _RECORD).write_text("".join(f"{group}\n" for group in limiter.groups))
    try:
        for group in limiter.groups:
            group.mkdir(parents=True, exist_ok=True)
        if version == 1:
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        else:
            (memory / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (memory / "memory.swap.max").write_text("0")
        (pids / "pids.max").write_text(str(max_processes))
    except OSError:
        limiter.remove()
        raise
    return limiter


def reap(scratch: Path) -> None:
    """Kills the processes left in the groups recorded in ``scratch`` and removes them."""
    with contextlib.suppress(FileNotFoundError):
        for line in (scratch / _RECORD).read_text().splitlines():
            if line:
                _remove_group(Path(line))


def _v1_groups(sandbox_id: str) -> tuple[Path, Path, int] | None:
    mounts = _mounts()
    roots: dict[str, Path] = {}
    for mount_point, fs_type, options in mounts:
        if fs_type == "cgroup":
            for controller in _V1_CONTROLLERS:
                if controller in options.split(","):
                    roots[controller] = Path(mount_point)
    if len(roots) < len(_V1_CONTROLLERS):
        return None
    own = _own_v1_paths()
    paths = {
        name: roots[name] / own.get(name, "/").lstrip("/") / "lamina" / sandbox_id
        for name in _V1_CONTROLLERS
    }
    if not all(_writable(path.parent.parent) for path in paths.values()):
        return None
    return paths["memory"], paths["pids"], 1


def _v2_groups(sandbox_id: str) -> tuple[Path, Path, int] | None:
    root = next((Path(m) for m, fs_type, _ in _mounts() if fs_type == "cgroup2"), None)
    if root is None:
        return None
    try:
        available = (root / "cgroup.controllers").read_text().split()
        if not {"memory", "pids"} <= set(available):
            return None
        (root / "cgroup.subtree_control").write_text("+memory +pids")
        parent = root / "lamina"
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    group = parent / sandbox_id
    return group, group, 2


def _mounts() -> list[tuple[str, str, str]]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append((fields[1], fields[2], fields[3]))
    return found


def _own_v1_paths() -> dict[str, str]:
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


def _kill_group(group: Path) -> None:
    kill_file = group / "cgroup.kill"
    if kill_file.exists():
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
            return
    for _ in range(100):  # a fork racing the sweep is caught by the next pass
        try:
            pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _remove_group(group: Path) -> None:
    if not group.exists():
        return
    _kill_group(group)
    deadline = time.monotonic() + 5.0
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # busy until the killed processes have exited
            if time.monotonic() > deadline:
                raise
            _kill_group(group)
            time.sleep(0.005)
