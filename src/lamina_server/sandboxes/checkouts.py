"""Checkouts: a commit's objects under a prefix as a read-only directory tree.

A sandbox sees its repository through an overlay whose lower directory is a checkout. One is
built once per ``(repository, commit, prefix)`` and shared by every sandbox that asks for it:
the objects are listed in one read snapshot (:meth:`VersionStore.list_tree`), written into a
folder under ``.building/`` in a worker thread (:meth:`BlobStore.export`: hard links to whole
blob files, byte copies of packed and multipart blobs; files 0644, folders 0755), then renamed
into place in one step. Concurrent callers for the same key wait for the same build; later
calls answer from memory.

The folder (``root``)::

    <repository id>/<commit id>/<key>/tree/       the files (key: a hash of the prefix)
    <repository id>/<commit id>/<key>/meta.json   skipped paths, and the boot it was built in
    .building/<n>/                                being built (removed on start)
    .trash/<n>/                                   being removed (removed on start)

Some object paths cannot be files (:func:`plan`): an object whose path is also the folder of
other objects (``a`` next to ``a/b``: the folder wins), or a path with a segment longer than
255 bytes. Those are left out and listed in :attr:`Checkout.skipped` for the sandbox's log.

Files written since the last boot may not be on disk after a power loss, so a checkout built
during an earlier boot is rebuilt rather than trusted (``meta.json`` records the boot id).

Pinning: :meth:`Checkouts.checkout` pins what it returns, :meth:`Checkouts.release` unpins it.
:meth:`Checkouts.prune` removes all but the ``keep`` most recently used checkouts, never a
pinned one nor one being built or handed out. Pins live in memory: after a restart no sandbox
of the previous process runs any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio import to_thread

from lamina_server.storage.blobs import BlobStore
from lamina_server.versioning import Entry, VersionStore

DIR_MODE = 0o755
MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux file systems
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

Key = tuple[str, str, str]  # repository id, commit id, normalized prefix


class CheckoutError(Exception):
    """A checkout cannot be made or released as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An object left out of a checkout (``path`` is the repository path)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Checkout:
    """A built checkout: ``path`` is the tree to mount read-only."""

    repository_id: str
    commit_id: str
    prefix: str  # normalized: "" or ending in "/"
    path: Path
    skipped: tuple[Skipped, ...]

    @property
    def key(self) -> Key:
        return (self.repository_id, self.commit_id, self.prefix)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a checkout's tree holds: folders (parents first), files and what was left out."""

    folders: list[str]
    files: list[tuple[str, str, int]]  # relative path, blob address, size
    skipped: list[Skipped]


def normalize_prefix(prefix: str) -> str:
    """``""`` stays; ``"data"`` and ``"data/"`` become ``"data/"``. :class:`CheckoutError` for
    a prefix no object path could start with as a folder."""
    if prefix in ("", "/"):
        return ""
    if "\x00" in prefix or prefix.startswith("/"):
        raise CheckoutError(f"prefix {prefix!r} must be a relative folder path without NUL")
    segments = prefix.rstrip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise CheckoutError(f"prefix {prefix!r} must not have empty, '.' or '..' segments")
    return "/".join(segments) + "/"


def plan(entries: Sequence[tuple[str, Entry]], prefix: str) -> Plan:
    """The tree for ``entries`` (all under the normalized ``prefix``, in path order)."""
    files: list[tuple[str, str, int]] = []
    skipped: list[Skipped] = []
    folders: set[str] = set()
    cut = len(prefix)
    for path, entry in entries:
        relative = path[cut:]
        segments = relative.split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            skipped.append(Skipped(path, "not a relative file path"))
            continue
        if any(len(segment.encode()) > MAX_SEGMENT_BYTES for segment in segments):
            skipped.append(
                Skipped(path, f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
            )
            continue
        files.append((relative, entry.address, entry.size))
        folders.update(itertools.accumulate(segments[:-1], lambda a, b: f"{a}/{b}"))
    kept = []
    for relative, address, size in files:
        if relative in folders:
            skipped.append(Skipped(prefix + relative, "it is also the folder of other objects"))
        else:
            kept.append((relative, address, size))
    skipped.sort(key=lambda item: item.path)
    return Plan(sorted(folders), kept, skipped)


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(eq=False)
class _Build:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: Exception | None = None


class Checkouts:
    """Builds, shares, pins and prunes checkouts under ``root`` (see the module docstring).

    Construct it before serving: it removes what an earlier process left half done.
    ``keep`` is :meth:`prune`'s default.
    """

    def __init__(
        self, root: Path, versions: VersionStore, blobs: BlobStore, *, keep: int = 16
    ) -> None:
        self.root = root
        self.versions = versions
        self.blobs = blobs
        self.keep = keep
        self._building_dir = root / ".building"
        self._trash = root / ".trash"
        self._ready: dict[Key, Checkout] = {}
        self._builds: dict[Key, _Build] = {}
        self._pins: Counter[Key] = Counter()
        self._used: dict[Key, float] = {}  # wall-clock time of the last checkout()
        self._boot = _boot_id()
        self._serial = itertools.count()
        for folder in (self._building_dir, self._trash):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    def _folder(self, key: Key) -> Path:
        repository_id, commit_id, prefix = key
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:32]
        return self.root / repository_id / commit_id / digest

    async def checkout(self, repository_id: str, commit_id: str, prefix: str = "") -> Checkout:
        """The checkout of ``commit_id`` under ``prefix``, pinned until :meth:`release`.

        Errors of the engine (e.g. an unknown commit) and of the blob store pass through.
        """
        for name in (repository_id, commit_id):
            if not name or "/" in name or name.startswith("."):
                raise CheckoutError(f"{name!r} is not a repository or commit id")
        key = (repository_id, commit_id, normalize_prefix(prefix))
        while (ready := self._ready.get(key)) is None:
            build = self._builds.get(key)
            if build is None:
                build = self._builds[key] = _Build()
                try:
                    with anyio.CancelScope(shield=True):  # waiters share this build
                        self._ready[key] = await self._load_or_build(key)
                except Exception as exc:
                    build.error = exc
                    raise
                finally:
                    del self._builds[key]
                    build.done.set()
            else:
                await build.done.wait()
                if build.error is not None:
                    raise build.error
        self._pins[key] += 1
        self._used[key] = time.time()
        return ready

    def release(self, checkout: Checkout) -> None:
        """Unpins a checkout :meth:`checkout` returned (once per time it was returned)."""
        key = checkout.key
        if not self._pins.get(key):
            raise CheckoutError(f"checkout {self._folder(key)} is not pinned")
        self._pins[key] -= 1
        if not self._pins[key]:
            del self._pins[key]

    def pinned(self, checkout: Checkout) -> int:
        """How many times ``checkout`` is pinned."""
        return self._pins.get(checkout.key, 0)

    async def prune(self, keep: int | None = None) -> list[Path]:
        """Removes all but the ``keep`` most recently used checkouts (default: the
        constructor's), skipping pinned ones and those being built; returns what it removed.
        Checkouts on disk from an earlier process count as used when they were built."""
        keep = self.keep if keep is None else keep
        on_disk = await to_thread.run_sync(self._scan)
        known = {self._folder(key): key for key in self._ready}
        ranked = sorted(
            on_disk,
            key=lambda item: self._used.get(known.get(item[0], ("", "", "")), item[1]),
            reverse=True,
        )
        removed: list[Path] = []
        for folder, _ in ranked[keep:]:
            key = known.get(folder)
            if key is not None and (self._pins[key] or key in self._builds):
                continue
            if key is None and any(self._folder(busy) == folder for busy in self._builds):
                continue
            if key is not None:
                del self._ready[key]
                self._used.pop(key, None)
                self._pins.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                os.rename(folder, self._trash / str(next(self._serial)))  # in the loop: atomic
                removed.append(folder)
        await to_thread.run_sync(self._empty_trash)
        return removed

    # --- blocking steps (worker threads) ---------------------------------------------------

    def _scan(self) -> list[tuple[Path, float]]:
        """Every checkout folder on disk, with the time it was built."""
        found = []
        for repository in os.scandir(self.root):
            if repository.name.startswith(".") or not repository.is_dir():
                continue
            for commit in os.scandir(repository.path):
                for built in os.scandir(commit.path):
                    with contextlib.suppress(FileNotFoundError):
                        found.append((Path(built.path), built.stat().st_mtime))
        return found

    def _empty_trash(self) -> None:
        for entry in os.scandir(self._trash):
            shutil.rmtree(entry.path, ignore_errors=True)

    def _load(self, key: Key) -> Checkout | None:
        """The checkout built on disk for ``key`` in this boot, if there is one."""
        folder = self._folder(key)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if meta["boot_id"] != self._boot:
            os.rename(folder, self._trash / f"stale-{next(self._serial)}")
            return None
        skipped = tuple(Skipped(path, reason) for path, reason in meta["skipped"])
        return Checkout(*key, path=folder / "tree", skipped=skipped)

    def _prepare(self, key: Key, entries: list[tuple[str, Entry]]) -> tuple[Path, Plan]:
        """A new build folder with the tree's folders made; the plan of its files."""
        laid_out = plan(entries, key[2])
        build = self._building_dir / str(next(self._serial))
        tree = build / "tree"
        build.mkdir()
        for folder in (tree, *(tree / relative for relative in laid_out.folders)):
            folder.mkdir()
            os.chmod(folder, DIR_MODE)
        return build, laid_out

    def _finish(self, key: Key, build: Path, skipped: list[Skipped]) -> Checkout:
        """Records the metadata and renames the build into place (or takes the one another
        process renamed there first)."""
        meta = {"boot_id": self._boot, "skipped": [[item.path, item.reason] for item in skipped]}
        (build / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        folder = self._folder(key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(build, folder)
        except OSError:  # ENOTEMPTY/EEXIST: built meanwhile by another process
            shutil.rmtree(build, ignore_errors=True)
            loaded = self._load(key)
            if loaded is None:
                raise
            return loaded
        return Checkout(*key, path=folder / "tree", skipped=tuple(skipped))

    async def _load_or_build(self, key: Key) -> Checkout:
        loaded = await to_thread.run_sync(self._load, key)
        if loaded is not None:
            return loaded
        repository_id, commit_id, prefix = key
        entries = await self.versions.list_tree(repository_id, commit_id, prefix=prefix)
        build, laid_out = await to_thread.run_sync(self._prepare, key, entries)
        try:
            tree = build / "tree"
            await self.blobs.export(
                [(address, size, tree / relative) for relative, address, size in laid_out.files]
            )
            return await to_thread.run_sync(self._finish, key, build, laid_out.skipped)
        finally:
            if build.exists():
                await to_thread.run_sync(lambda: shutil.rmtree(build, ignore_errors=True))
