"""The file system a sandbox sees, as bubblewrap arguments.

The root is a fresh tmpfs made read-only once populated. A host image (:attr:`Image.host`)
shows ``/usr``, the system directories beside it exactly as the host has them (merged-usr
symlinks or directories), a curated read-only part of ``/etc`` and a synthesized
``passwd``/``group``/``hostname``/``hosts``; nothing else of the host. Any other image shows
every top-level entry of its root, read-only. Both get their own ``/proc``, a minimal
``/dev``, a private ``/tmp`` and the sandbox's mount, read-write, at the mountpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .base import Image

UID = 1000
GID = 1000
USER = "sandbox"
HOSTNAME = "sandbox"

_HOST_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_HOST_ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "protocols",
    "services",
    "ssl/certs",
    "ssl/openssl.cnf",
    "terminfo",
    "timezone",
)
_FRESH = ("proc", "dev", "tmp", ".lamina")  # made by bwrap, or the runner's own (the agent)


def build_host_etc(directory: Path) -> None:
    """Fills ``directory`` with the ``/etc`` of host images: copies of the curated host files
    (symbolic links stay links, resolved inside the sandbox) and the sandbox's own
    ``passwd``, ``group``, ``hostname`` and ``hosts``.

    One bind of this directory costs far less per process than a bind per file; the copy is
    made once per runner, so host changes to these files show from the next server start.
    """
    directory.mkdir(parents=True, exist_ok=True)
    host = Path("/etc")
    names = [*_HOST_ETC, *(name for name in os.listdir(host) if name.startswith("python3"))]
    for name in names:
        source, target = host / name, directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True)
        elif os.path.lexists(source):
            shutil.copy2(source, target, follow_symlinks=False)
    files = {
        "passwd": (
            "root:x:0:0:root:/root:/bin/sh\n"
            f"{USER}:x:{UID}:{GID}:{USER}:/tmp:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "group": f"root:x:0:\n{USER}:x:{GID}:\nnogroup:x:65534:\n",
        "hostname": f"{HOSTNAME}\n",
        "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text)


def image_args(image: Image, etc: Path, mountpoint: str) -> list[str]:
    """Arguments that lay out ``image`` as the root, before the mount and ``--remount-ro /``.

    ``etc`` is the directory :func:`build_host_etc` filled (used for host images).
    """
    top = mountpoint.strip("/").split("/")[0]
    args: list[str] = []
    if image.host:
        root = Path("/")
        names = [name for name in _HOST_SYSTEM_DIRS if os.path.lexists(root / name)]
    else:
        root = image.root
        names = sorted(name for name in os.listdir(root) if name not in (*_FRESH, top))
    for name in names:
        args += _entry_args(root / name, f"/{name}")
    if image.host:
        args += ["--ro-bind", str(etc), "/etc"]
    return [*args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]


def _entry_args(source: Path, target: str) -> list[str]:
    if source.is_symlink():
        return ["--symlink", os.readlink(source), target]
    return ["--ro-bind", str(source), target]


def host_path(image: Image, path: str) -> Path | None:
    """Where an absolute sandbox path of the image lives on the host (None: not visible)."""
    relative = path.lstrip("/")
    if image.host:
        top = relative.split("/")[0]
        return Path("/", relative) if top in _HOST_SYSTEM_DIRS else None
    return image.root / relative
