"""What a sandbox changed: an overlayfs upper directory read back as repository changes.

:func:`capture` walks only the upper directory, so its cost follows the size of the change;
the lower directory (the checkout the sandbox started from) is looked at only for the paths
the upper one names. Nothing is followed: entries are read with ``lstat``, a symbolic link's
target is never opened.

How overlayfs records a change, and what it becomes:

- a regular file → a *put*, unless its bytes equal the lower file at the same path (a copy-up
  without a change: ``touch``, ``chmod``; or a metadata-only copy-up with ``metacopy=on``);
- a whiteout (character device 0:0) → a *delete* of what the lower directory held there: a
  folder becomes a prefix delete, a file a plain one;
- an opaque folder (xattr ``overlay.opaque`` = ``y``: removed, then made again) → a prefix
  delete of the lower folder, then its upper contents as puts;
- anything in upper at a path where lower held something of another kind (a file where a
  folder was, a link where a file was) → the lower thing's delete as well.

Applied in this order — deletes, then puts — the repository ends up as the sandbox saw it.
Symbolic links, fifos, sockets and devices are *skipped* (reported, not stored); names that
are not valid repository paths (:func:`path_problem`) are *refused*. Folders produce nothing
of their own, so empty ones are not kept. A folder renamed with ``redirect_dir=on`` keeps its
files in lower and is refused: runners mount with ``redirect_dir=off`` (the kernel default),
under which ``mv`` copies.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_PATH_BYTES = 1024  # the API's limit on an object path (lamina_server.api.validation)
_COMPARE_BLOCK = 1024 * 1024
_XATTRS = ("trusted.overlay.", "user.overlay.")  # root mounts, and userxattr mounts


@dataclass(frozen=True, slots=True)
class Put:
    """A new or modified file: ``path`` in the repository, its bytes at ``source``."""

    path: str
    source: Path
    size: int


@dataclass(frozen=True, slots=True)
class Delete:
    """``path`` was removed; ``is_prefix``: it was a folder (``path`` has no trailing '/')."""

    path: str
    is_prefix: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """A path that is not stored, and why; ``path`` is printable (bad bytes escaped)."""

    path: str
    reason: str


@dataclass(slots=True)
class Capture:
    """The changes, in walk order; deletes are meant to be applied before puts."""

    puts: list[Put] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # not files: links, fifos, ...
    refused: list[Problem] = field(default_factory=list)  # not valid repository paths


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a valid object path (None: it is). The rules of
    :func:`lamina_server.api.validation.validate_path`, as a reason instead of an API error."""
    if path == "":
        return "the path is empty"
    if "\x00" in path:
        return "the path contains a NUL character"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"the path is {size} bytes of UTF-8; the limit is {MAX_PATH_BYTES}"
    if path.startswith("/"):
        return "the path starts with '/'"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"the path has {repr(segment) if segment else 'an empty'} segment"
    return None


def printable(path: str) -> str:
    """``path`` with bytes that are not UTF-8 shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _xattr(path: str, name: str) -> bytes | None:
    for namespace in _XATTRS:
        try:
            return os.getxattr(path, namespace + name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return None


def _lower_kind(lower: str) -> str | None:
    """``"dir"``, ``"file"`` (anything else counts as one) or None for nothing there."""
    try:
        mode = os.lstat(lower).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "dir" if stat.S_ISDIR(mode) else "file"


def _same_bytes(upper: str, lower: str, size: int) -> bool:
    try:
        info = os.lstat(lower)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(upper, flags), "rb") as a, open(os.open(lower, flags), "rb") as b:
        while True:
            block = a.read(_COMPARE_BLOCK)
            if block != b.read(_COMPARE_BLOCK):
                return False
            if not block:
                return True


class _Walk:
    def __init__(self, upper: Path, lower: Path) -> None:
        self.upper = str(upper)
        self.lower = str(lower)
        self.result = Capture()

    def lower_path(self, relative: str) -> str:
        return os.path.join(self.lower, relative)

    def replaced(self, relative: str, kind: str | None) -> None:
        """Upper holds ``relative`` instead of what lower held there (of kind ``kind``)."""
        if kind is not None:
            self.result.deletes.append(Delete(relative, kind == "dir"))

    def run(self) -> Capture:
        """Walks upper's folders depth first, without recursion (paths nest 512 deep)."""
        folders: list[tuple[str, bool]] = [("", True)]  # relative path, lower visible there
        while folders:
            relative, lower_visible = folders.pop()
            found = self.folder(relative, lower_visible)
            folders.extend(reversed(found))
        return self.result

    def folder(self, relative: str, lower_visible: bool) -> list[tuple[str, bool]]:
        """The entries of upper's folder ``relative`` ("" for the root); returns its folders
        to walk next."""
        with os.scandir(os.path.join(self.upper, relative)) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
        folders = []
        for entry in listed:
            path = f"{relative}/{entry.name}" if relative else entry.name
            info = entry.stat(follow_symlinks=False)
            mode = info.st_mode
            if stat.S_ISCHR(mode) and info.st_rdev == 0:  # a whiteout
                if lower_visible:
                    self.replaced(path, _lower_kind(self.lower_path(path)))
                continue
            problem = path_problem(path)
            if problem is not None:
                suffix = " (and everything under it)" if stat.S_ISDIR(mode) else ""
                self.result.refused.append(Problem(printable(path), problem + suffix))
                continue
            kind = _lower_kind(self.lower_path(path)) if lower_visible else None
            if stat.S_ISDIR(mode):
                visible = self.directory(entry.path, path, kind)
                if visible is not None:
                    folders.append((path, visible))
            elif stat.S_ISREG(mode):
                self.file(entry.path, path, info.st_size, kind)
            else:
                self.replaced(path, kind)
                self.result.skipped.append(Problem(path, _kind_name(mode)))
        return folders

    def directory(self, upper: str, path: str, kind: str | None) -> bool | None:
        """Whether lower shows through the folder (None: do not walk it)."""
        if _xattr(upper, "redirect") is not None:
            self.result.refused.append(
                Problem(
                    path, "a renamed folder kept in lower (overlay redirect_dir is not supported)"
                )
            )
            return None
        opaque = _xattr(upper, "opaque") == b"y"
        if kind == "file" or (kind == "dir" and opaque):
            self.replaced(path, kind)
        return kind == "dir" and not opaque

    def file(self, upper: str, path: str, size: int, kind: str | None) -> None:
        if kind == "file":
            lower = self.lower_path(path)
            if _xattr(upper, "metacopy") is not None or _same_bytes(upper, lower, size):
                return  # copied up for its metadata only: the bytes are lower's
        else:
            self.replaced(path, kind)
        self.result.puts.append(Put(path, Path(upper), size))


def _kind_name(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (not followed, not stored)"
    if stat.S_ISFIFO(mode):
        return "a fifo (not stored)"
    if stat.S_ISSOCK(mode):
        return "a socket (not stored)"
    return "a device node (not stored)"


def capture(upper: Path, lower: Path) -> Capture:
    """The changes an overlay with upper directory ``upper`` made over ``lower``, as paths
    relative to the mount's root (blocking; see the module docstring)."""
    return _Walk(upper, lower).run()
