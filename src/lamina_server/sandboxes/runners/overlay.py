"""The sandbox's overlay, mounted in a private mount namespace by the command that runs bwrap.

Every process of a sandbox must see one overlay mount (an upper directory may only be
mounted once), and that mount must never outlive the sandbox. :func:`command` prefixes the
sandbox's ``bwrap`` command line with ``unshare --mount`` and a shell that mounts the
overlay on ``scratch/merged`` in that new, private namespace, then execs bwrap, which binds
the merged directory into the sandbox's root. The namespace, and the overlay with it, is
gone once bwrap and the sandbox have exited (``--die-with-parent`` ties them to the
server). The host's own mount table never shows the overlay.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from .base import SandboxSpec

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


def merged(spec: SandboxSpec) -> Path:
    """Where the overlay is mounted, inside the namespace :func:`command` makes."""
    return spec.scratch / "merged"


def command(spec: SandboxSpec, then: Sequence[str]) -> list[str]:
    """A command line that mounts ``spec``'s overlay in a new mount namespace, then execs
    ``then`` there; it fails with a message on stderr when no option set mounts."""
    target = merged(spec)
    target.mkdir(exist_ok=True)
    base = f"lowerdir={spec.lower},upperdir={spec.upper},workdir={spec.work}"
    attempts = " || ".join(
        "mount -t overlay overlay -o "
        + shlex.quote(f"{base},{extra}".rstrip(","))
        + f" {shlex.quote(str(target))} 2>/dev/null"
        for extra in _OPTION_SETS
    )
    failed = shlex.quote(f"cannot mount the sandbox's overlay (lower {spec.lower})")
    script = f'({attempts}) || {{ echo {failed} >&2; exit 1; }}; exec "$@"'
    return [
        *("unshare", "--mount", "--propagation", "private", "--"),
        *("/bin/sh", "-c", script, "sh", *then),
    ]
