"""The local image catalogue: the root filesystems sandboxes can run in.

Nothing is pulled from a registry. An image is the built-in ``host`` (the host's own ``/usr``,
always present), a directory registered in place, or a tarball (``docker export`` output, a
debootstrap tarball, any ``.tar``/``.tar.gz`` of a root filesystem) extracted into
``<images dir>/<name>/`` (``/`` in the name as ``+``). An alias names another image, e.g.
``ubuntu:22.04`` → ``host``. Names follow Docker references (``python:3.12``,
``my-org/img:tag``).

Extraction uses :mod:`tarfile`'s ``tar`` filter — no absolute paths, nothing written outside
the image's folder, no setuid/setgid bits — and leaves out device nodes and fifos. It happens
in a folder of its own that is renamed into place only when complete.

The catalogue is the ``sandbox_images`` table: ``name``, ``root`` and ``kind`` (``host`` or
``rootfs``; both None for an alias), ``alias_of``, ``env`` (JSON: the image's own
environment) and ``created_at``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from anyio import to_thread

from lamina_server.sandboxes.runners.base import Image
from lamina_server.storage.db import Database, metadata

HOST = Image(
    name="host",
    root=Path("/"),
    host=True,
    env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
)
MAX_ALIAS_HOPS = 16
MAX_NAME_CHARS = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_NAME = re.compile(
    rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

sandbox_images = sa.Table(
    "sandbox_images",
    metadata,
    sa.Column("name", sa.String(MAX_NAME_CHARS), primary_key=True),
    sa.Column("root", sa.Text, nullable=True),
    sa.Column("kind", sa.String(16), nullable=True),  # "host" | "rootfs"; None: an alias
    sa.Column("alias_of", sa.String(MAX_NAME_CHARS), nullable=True),
    sa.Column("env", sa.Text, nullable=False),  # JSON object of strings
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
)


class ImageError(Exception):
    """An image cannot be added, aliased, found or removed; the message says why."""


class ImageNotFound(ImageError):
    """No image of that name; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"image {name!r} is not known here (known: {', '.join(known)}); images are added "
            "with 'lamina server image add NAME PATH'"
        )
        self.name = name


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One row of the catalogue (the built-in ``host`` included)."""

    name: str
    kind: str | None  # "host" | "rootfs"; None for an alias
    root: Path | None
    alias_of: str | None
    env: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None  # None for the built-in


def default_images_dir(data_dir: Path) -> Path:
    """Where a server keeps the images it extracted."""
    return data_dir / "sandboxes" / "images"


def check_name(name: str) -> str:
    """``name`` if it is an image reference, else :class:`ImageError` saying what one is."""
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise ImageError(
            f"{name!r} is not an image name: lowercase letters, digits and '.', '_', '-' "
            "separated by '/', then an optional ':tag' (e.g. python:3.12, my-org/img:tag)"
        )
    return name


def _check_env(env: Mapping[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key) or "\x00" in value:
            raise ImageError(f"environment variable {key!r} is not a valid NAME=VALUE")
    return dict(env)


def _looks_like_root(root: Path) -> bool:
    return (root / "usr").is_dir() or os.path.lexists(root / "bin")


def _record(row: Any) -> ImageRecord:
    return ImageRecord(
        name=row.name,
        kind=row.kind,
        root=None if row.root is None else Path(row.root),
        alias_of=row.alias_of,
        env=json.loads(row.env),
        created_at=datetime.fromtimestamp(row.created_at / 1e6, timezone.utc),
    )


def _member_filter(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo | None:
    """The ``tar`` filter, leaving out device nodes and fifos."""
    if member.isdev():
        return None
    return tarfile.tar_filter(member, destination)


def _extract(archive: Path, destination: Path) -> None:
    """Extracts ``archive`` into the new folder ``destination`` (blocking)."""
    destination.mkdir(mode=0o755)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(destination, filter=_member_filter)
    except tarfile.FilterError as exc:
        raise ImageError(f"{archive} is refused: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageError(f"{archive} cannot be extracted: {exc}") from None
    os.chmod(destination, 0o755)


class Images:
    """The catalogue in ``db``; extracted images live in ``images_dir``."""

    def __init__(self, db: Database, images_dir: Path) -> None:
        self.db = db
        self.images_dir = images_dir

    def _folder(self, name: str) -> Path:
        return self.images_dir / name.replace("/", "+")

    async def _rows(self) -> dict[str, ImageRecord]:
        def run(conn: sa.Connection) -> dict[str, ImageRecord]:
            query = sa.select(sandbox_images).order_by(sandbox_images.c.name)
            return {row.name: _record(row) for row in conn.execute(query)}

        return await self.db.run_read(run)

    async def list(self) -> list[ImageRecord]:
        """The built-in ``host``, then every image and alias by name."""
        host = ImageRecord(HOST.name, "host", HOST.root, None, dict(HOST.env))
        return [host, *(await self._rows()).values()]

    async def resolve(self, name: str) -> Image:
        """The image ``name`` names, following aliases; :class:`ImageNotFound` if none."""
        if name == HOST.name:
            return HOST
        rows = await self._rows()
        current = name
        for _ in range(MAX_ALIAS_HOPS):
            if current == HOST.name:
                return HOST
            record = rows.get(current)
            if record is None:
                raise ImageNotFound(name, [HOST.name, *rows])
            if record.alias_of is None:
                assert record.root is not None
                return Image(name=record.name, root=record.root, env=dict(record.env))
            current = record.alias_of
        raise ImageError(f"image {name!r}: aliases go more than {MAX_ALIAS_HOPS} deep")

    async def add(
        self,
        name: str,
        path: Path,
        *,
        env: Mapping[str, str] | None = None,
        replace: bool = False,
    ) -> Image:
        """Registers the root filesystem directory ``path`` in place, or extracts the tarball
        ``path`` into the images folder. An existing ``name`` is refused unless ``replace``."""
        check_name(name)
        variables = _check_env(env or {})
        if name == HOST.name:
            raise ImageError("'host' is built in and cannot be replaced")
        existing = (await self._rows()).get(name)
        if existing is not None and not replace:
            raise ImageError(f"image {name!r} exists already (replace it with --replace)")
        path = path.expanduser().absolute()
        if path.is_dir():
            root = path.resolve()
            if not _looks_like_root(root):
                raise ImageError(f"{path} does not look like a root filesystem (no usr/ or bin/)")
        elif path.is_file():
            root = await to_thread.run_sync(self._unpack, name, path)
        else:
            raise ImageError(f"{path} is neither a directory nor a tarball")
        row = {
            "name": name,
            "root": str(root),
            "kind": "rootfs",
            "alias_of": None,
            "env": json.dumps(variables, sort_keys=True),
            "created_at": int(datetime.now(timezone.utc).timestamp() * 1e6),
        }

        def run(conn: sa.Connection) -> None:
            conn.execute(sa.delete(sandbox_images).where(sandbox_images.c.name == name))
            conn.execute(sa.insert(sandbox_images).values(**row))

        await self.db.run_write(run)
        return Image(name=name, root=root, env=variables)

    def _unpack(self, name: str, archive: Path) -> Path:
        """Extracts ``archive`` into a fresh folder and renames it into place (blocking)."""
        if not tarfile.is_tarfile(archive):
            raise ImageError(f"{archive} is not a tar archive (.tar, .tar.gz, .tar.xz, ...)")
        self.images_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.images_dir / f".new-{uuid.uuid4().hex}"
        try:
            _extract(archive, temporary)
            if not _looks_like_root(temporary):
                raise ImageError(f"{archive} does not hold a root filesystem (no usr/ or bin/)")
            final = self._folder(name)
            if final.exists():
                old = self.images_dir / f".old-{uuid.uuid4().hex}"
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            temporary.rename(final)
            return final
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    async def alias(self, alias: str, target: str, *, replace: bool = False) -> None:
        """Makes ``alias`` name the image ``target`` names (another alias included)."""
        check_name(alias)
        if alias == HOST.name:
            raise ImageError("'host' is built in and cannot be replaced")
        rows = await self._rows()
        if alias in rows and not replace:
            raise ImageError(f"image {alias!r} exists already (replace it with --replace)")
        current: str | None = target
        while current is not None and current != HOST.name:
            if current == alias:
                raise ImageError(f"aliasing {alias!r} to {target!r} would make a cycle")
            record = rows.get(current)
            if record is None:
                raise ImageNotFound(target, [HOST.name, *rows])
            current = record.alias_of
        row = {
            "name": alias,
            "root": None,
            "kind": None,
            "alias_of": target,
            "env": "{}",
            "created_at": int(datetime.now(timezone.utc).timestamp() * 1e6),
        }

        def run(conn: sa.Connection) -> None:
            conn.execute(sa.delete(sandbox_images).where(sandbox_images.c.name == alias))
            conn.execute(sa.insert(sandbox_images).values(**row))

        await self.db.run_write(run)

    async def remove(self, name: str) -> None:
        """Forgets ``name``, and deletes its folder if it was extracted here. An image that
        aliases point to is refused; a directory registered in place is left alone."""
        if name == HOST.name:
            raise ImageError("'host' is built in and cannot be removed")
        rows = await self._rows()
        record = rows.get(name)
        if record is None:
            raise ImageNotFound(name, [HOST.name, *rows])
        pointing = sorted(other.name for other in rows.values() if other.alias_of == name)
        if pointing:
            raise ImageError(f"image {name!r} is the target of {', '.join(pointing)}")
        await self.db.run_write(
            lambda conn: conn.execute(
                sa.delete(sandbox_images).where(sandbox_images.c.name == name)
            )
        )
        folder = self._folder(name)
        if record.root == folder:
            await to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))
