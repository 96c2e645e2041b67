"""The image catalogue on a real SQLite file and real folders and tarballs, and the
``lamina-server image`` commands."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from lamina_server.cli import main
from lamina_server.sandboxes.images import (
    HOST,
    ImageError,
    ImageNotFound,
    Images,
    check_name,
    default_images_dir,
)
from lamina_server.storage.db import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def images(db: Database, tmp_path: Path) -> Images:
    return Images(db, default_images_dir(tmp_path))


def _rootfs(path: Path) -> Path:
    (path / "usr" / "bin").mkdir(parents=True)
    (path / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (path / "bin").symlink_to("usr/bin")
    return path


def _tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


async def test_host_is_built_in_and_unknown_names_list_the_known_ones(images: Images) -> None:
    assert await images.resolve("host") == HOST
    with pytest.raises(ImageNotFound, match=r"'nope' is not known here \(known: host\)"):
        await images.resolve("nope")
    assert [r.name for r in await images.list()] == ["host"]


async def test_a_directory_is_registered_in_place(images: Images, tmp_path: Path) -> None:
    root = _rootfs(tmp_path / "rootfs")
    image = await images.add("my-org/img:1.0", root, env={"LANG": "C.UTF-8"})
    assert image.root == root and not image.host and dict(image.env) == {"LANG": "C.UTF-8"}
    assert await images.resolve("my-org/img:1.0") == image
    with pytest.raises(ImageError, match="exists already"):
        await images.add("my-org/img:1.0", root)
    await images.add("my-org/img:1.0", root, replace=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no usr/ or bin/"):
        await images.add("empty", tmp_path / "empty")
    await images.remove("my-org/img:1.0")
    assert root.exists()  # registered in place: not ours to delete


async def test_a_tarball_is_extracted_safely(images: Images, tmp_path: Path) -> None:
    archive = _tarball(
        tmp_path / "rootfs.tar.gz",
        [
            (_member("usr", tarfile.DIRTYPE), None),
            (_member("usr/bin", tarfile.DIRTYPE), None),
            (_member("usr/bin/sh", mode=0o4755), b"#!shell"),
            (_member("bin", tarfile.SYMTYPE, linkname="usr/bin"), None),
            (_member("etc", tarfile.DIRTYPE), None),
            (_member("etc/localtime", tarfile.SYMTYPE, linkname="/usr/share/zoneinfo/UTC"), None),
            (_member("dev", tarfile.DIRTYPE), None),
            (_member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
            (_member("dev/fifo", tarfile.FIFOTYPE), None),
        ],
    )
    image = await images.add("python:3.12", archive)
    assert image.root == default_images_dir(tmp_path) / "python:3.12"
    assert (image.root / "usr/bin/sh").read_bytes() == b"#!shell"
    assert os.stat(image.root / "usr/bin/sh").st_mode & 0o7777 == 0o755  # no setuid
    assert os.readlink(image.root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert sorted(os.listdir(image.root / "dev")) == []  # device nodes and fifos left out
    await images.remove("python:3.12")
    assert not image.root.exists()


async def test_tarballs_escaping_their_folder_are_refused(images: Images, tmp_path: Path) -> None:
    for name, member in {
        "dotdot": _member("../escape"),
        "through-link": _member("usr/x"),
    }.items():
        members: list[tuple[tarfile.TarInfo, bytes | None]] = [
            (_member("bin", tarfile.DIRTYPE), None)
        ]
        if name == "through-link":
            members.append((_member("usr", tarfile.SYMTYPE, linkname="/tmp"), None))
        members.append((member, b"evil"))
        with pytest.raises(ImageError, match="is refused"):
            await images.add(name, _tarball(tmp_path / f"{name}.tar.gz", members))
    assert not (tmp_path / "escape").exists()
    assert [p.name for p in default_images_dir(tmp_path).iterdir()] == []
    (tmp_path / "junk.tar").write_bytes(b"not a tarball")
    with pytest.raises(ImageError, match="not a tar archive"):
        await images.add("junk", tmp_path / "junk.tar")


async def test_aliases(images: Images, tmp_path: Path) -> None:
    await images.alias("ubuntu:22.04", "host")
    assert await images.resolve("ubuntu:22.04") == HOST
    await images.add("base", _rootfs(tmp_path / "rootfs"))
    await images.alias("latest", "base")
    await images.alias("stable", "latest")
    assert (await images.resolve("stable")).name == "base"
    with pytest.raises(ImageError, match="cycle"):
        await images.alias("base", "stable", replace=True)
    with pytest.raises(ImageNotFound):
        await images.alias("x", "missing")
    with pytest.raises(ImageError, match="target of latest"):
        await images.remove("base")
    with pytest.raises(ImageError, match="built in"):
        await images.alias("host", "base")


def test_names_follow_docker_references() -> None:
    for good in ("python:3.12", "my-org/img:tag", "ubuntu", "registry.local:5000/a/b:v1.2-rc"):
        assert check_name(good) == good
    for bad in ("Python", "a//b", "img:", ":tag", "a/../b", "x" * 300, "a b", "-a"):
        with pytest.raises(ImageError, match="is not an image name"):
            check_name(bad)


def test_the_image_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anyio_backend: str
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["image", "ls", *data]) == 1
    assert "no server data" in capsys.readouterr().err
    (tmp_path / "metadata.db").touch()  # a data dir whose server predates the images table
    root = _rootfs(tmp_path / "rootfs")
    assert main(["image", "add", "base:1", str(root), "--env", "A=b", *data]) == 0
    assert main(["image", "alias", "ubuntu:22.04", "host", *data]) == 0
    capsys.readouterr()
    assert main(["image", "ls", *data]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "host\thost /",
        f"base:1\trootfs {root}",
        "ubuntu:22.04\t-> host",
    ]
    assert main(["image", "rm", "nope", *data]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: image 'nope' is not known") and err.count("\n") == 1
    assert main(["image", "add", "Bad Name", str(root), *data]) == 1
    assert main(["image", "rm", "base:1", *data]) == 0
