"""The per-sandbox keeper: a process holding a private mount namespace with the overlay.

Every process of a sandbox must see one overlay mount (an upper directory may only be
mounted once), and that mount must never outlive the server. The keeper is ``unshare
--mount`` running a shell that mounts the overlay on ``scratch/merged`` in its own, private
mount namespace, reports ``ready``, then blocks reading its stdin — a pipe only the server
holds. Spawns enter that namespace (``nsenter --mount=/proc/<keeper>/ns/mnt``) and bind the
merged directory into their bubblewrap root. When the server closes the pipe or dies, the
keeper exits; the namespace, and the overlay with it, is gone once the sandbox's last
process (each started with ``--die-with-parent``) has exited too. The host's own mount
table never shows the overlay.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from pathlib import Path

from .base import RunnerError, SandboxSpec

# Options that keep the upper directory a plain tree (no redirects, metacopy or index
# entries), and ``volatile``: no sync of the upper file system when the overlay goes away
# (which would flush every dirty page of that file system, e.g. a checkout just built). The
# upper directory is read back right after, and a machine that crashes loses the sandbox
# anyway (``failed/sandbox_lost``). Kernels too old to know an option get the next list.
_OPTION_SETS = (
    "redirect_dir=off,metacopy=off,index=off,xino=off,volatile",
    "redirect_dir=off,metacopy=off,index=off,xino=off",
    "index=off",
    "",
)


class Keeper:
    """A started keeper; :attr:`merged` is where the overlay is, inside :attr:`namespace`."""

    def __init__(self, process: asyncio.subprocess.Process, merged: Path) -> None:
        self._process = process
        self.merged = merged
        self.namespace = f"/proc/{process.pid}/ns/mnt"
        self.root = Path(f"/proc/{process.pid}/root")

    @classmethod
    async def start(cls, spec: SandboxSpec) -> Keeper:
        """Mounts ``spec``'s overlay in a new keeper; :class:`RunnerError` if it cannot."""
        merged = spec.scratch / "merged"
        merged.mkdir(exist_ok=True)
        base = f"lowerdir={spec.lower},upperdir={spec.upper},workdir={spec.work}"
        attempts = " || ".join(
            "mount -t overlay overlay -o "
            + shlex.quote(f"{base},{extra}".rstrip(","))
            + f" {shlex.quote(str(merged))} 2>/dev/null"
            for extra in _OPTION_SETS
        )
        script = f"({attempts}) || exit 1; echo ready; read _"
        process = await asyncio.create_subprocess_exec(
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            script,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        if await process.stdout.readline() != b"ready\n":
            await process.wait()
            raise RunnerError(f"cannot mount the sandbox's overlay (lower {spec.lower})")
        return cls(process, merged)

    async def stop(self) -> None:
        """Lets the keeper exit (its namespace goes with the last process inside)."""
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
