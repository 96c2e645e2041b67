"""The runner interface: what the orchestrator asks of whatever isolates a sandbox.

A :class:`Runner` starts a :class:`Sandbox` from a :class:`SandboxSpec` — an image root, the
repository checkout to show (read-only), and a folder that receives the sandbox's writes — and
the sandbox spawns processes in it, each one a :class:`Process` with piped or terminal I/O.
Stopping a sandbox kills every process it holds and releases its mounts; what the sandbox wrote
is then in ``spec.upper``, and nothing else of the host was touched.

The orchestrator never learns how isolation is done: bubblewrap today
(:mod:`.bubblewrap`); a Kubernetes or Firecracker runner implements the same three protocols
(``docs/sandboxes.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class RunnerError(Exception):
    """The runner could not do what was asked; the message is fit for a sandbox's status."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandbox may use, all its processes together."""

    memory_bytes: int = 2 * 1024**3
    max_processes: int = 256


@dataclass(frozen=True, slots=True)
class Image:
    """A root filesystem to run in, read-only.

    ``root`` is a directory laid out as ``/``. ``host`` marks the host's own system
    directories (``root`` is then ``/``): the runner shows only ``/usr`` and the system
    folders linked from it, and a curated read-only part of ``/etc`` — never the host's home,
    data or secrets.
    """

    name: str
    root: Path
    host: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # the image's own environment


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """Everything needed to start one sandbox.

    ``lower`` is the repository as the sandbox starts (a directory the runner never writes);
    ``upper`` and ``work`` are empty directories on the same file system as each other, owned
    by this sandbox: after :meth:`Sandbox.stop`, ``upper`` holds exactly what the sandbox
    changed under ``mountpoint``, as an overlay upper directory (new and modified files,
    whiteouts for removals, opaque directories). ``scratch`` is an empty directory the runner
    may use for its own state (e.g. cgroup names, sockets). ``inputs``, when given, is a
    directory of files the sandbox reads, read-only, at :data:`INPUT_DIR`.
    """

    sandbox_id: str
    image: Image
    lower: Path
    upper: Path
    work: Path
    scratch: Path
    mountpoint: str = "/sandbox"
    limits: Limits = Limits()
    inputs: Path | None = None


INPUT_DIR = "/lamina/input"


def write_inputs(folder: Path, files: Mapping[str, bytes]) -> Path:
    """``files`` (plain names) written into a new ``folder``, for :attr:`SandboxSpec.inputs`."""
    folder.mkdir(mode=0o755)
    for name, data in files.items():
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"an input file's name must be a plain file name, not {name!r}")
        (folder / name).write_bytes(data)
    return folder


class Process(Protocol):
    """One process in a sandbox.

    With pipes, :meth:`read_stdout` and :meth:`read_stderr` are separate streams; with a
    terminal, everything arrives on :meth:`read_stdout` and :meth:`read_stderr` ends at once.
    """

    @property
    def pid(self) -> int: ...

    def read_stdout(self) -> AsyncIterator[bytes]:
        """Output as it is produced, in chunks under 1 MiB; ends at end of file."""
        ...

    def read_stderr(self) -> AsyncIterator[bytes]: ...

    async def write_stdin(self, data: bytes) -> None:
        """Writes to the process's stdin (or its terminal); :class:`RunnerError` once closed."""
        ...

    async def close_stdin(self) -> None:
        """End of file on stdin (on a terminal: nothing; send ``\\x04`` instead)."""
        ...

    def resize(self, cols: int, rows: int) -> None:
        """Sets the terminal's size (the foreground process gets SIGWINCH); no-op for pipes."""
        ...

    async def wait(self) -> int:
        """The exit status: the exit code, or ``128 + signal`` when a signal killed it."""
        ...

    def kill(self) -> None:
        """Kills the process and everything it started (idempotent)."""
        ...


class Sandbox(Protocol):
    """A started sandbox: a file system view and limits, with processes spawned into it."""

    @property
    def spec(self) -> SandboxSpec: ...

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        terminal: tuple[int, int] | None = None,
    ) -> Process:
        """Starts ``argv`` inside the sandbox with exactly ``env`` as its environment.

        ``cwd`` defaults to the mountpoint. ``terminal`` (cols, rows) gives the process a
        real terminal as its controlling tty and stdio instead of pipes. :class:`RunnerError`
        when it cannot start (e.g. the command does not exist: the message says so).
        """
        ...

    def limit_exceeded(self) -> str | None:
        """Which limit stopped a process, if one did (e.g. ``"memory"``), else None."""
        ...

    async def stop(self) -> None:
        """Kills every process of the sandbox and releases its mounts and limits; idempotent.
        After it returns no process of the sandbox is alive and ``spec.upper`` is final."""
        ...


class Runner(Protocol):
    """Starts sandboxes. ``name`` is what ``docs/`` and the status messages call it."""

    name: str

    def check(self) -> str | None:
        """Why this runner cannot run sandboxes on this machine (None: it can)."""
        ...

    async def start(self, spec: SandboxSpec) -> Sandbox:
        """Prepares the sandbox's mounts and limits; :class:`RunnerError` if it cannot."""
        ...

    async def reap(self, scratch_dirs: Sequence[Path]) -> None:
        """After a restart: releases whatever sandboxes started by a previous process left
        behind (processes, mounts, cgroups), given their scratch directories."""
        ...
