"""upload_dir / download_dir against the real server, with progress."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina import AsyncRepository, LaminaError, TransferProgress

pytestmark = pytest.mark.anyio


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"hello",
        "data/a.csv": b"a,b\n1,2\n",
        "data/nested/deep.bin": os.urandom(300_000),
        "data/empty": b"",
        "images/logo.png": os.urandom(5_000),
    }
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return files


async def test_upload_dir_then_download_dir_round_trip(
    repo: AsyncRepository, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src")
    total = sum(len(content) for content in files.values())
    uploads: list[TransferProgress] = []
    async with repo.session() as session:
        results = await session.objects.upload_dir(
            tmp_path / "src", "backup", concurrency=3, progress=uploads.append
        )
        await session.commit("backup")
    assert [result.path for result in results] == sorted(f"backup/{name}" for name in files)
    assert uploads[0] == TransferProgress(0, total, 0, len(files))
    assert uploads[-1] == TransferProgress(total, total, len(files), len(files))
    assert [p.files_done for p in uploads] == sorted(p.files_done for p in uploads)

    listed = sorted([entry.path async for entry in repo.objects.list(prefix="backup/")])
    assert listed == sorted(f"backup/{name}" for name in files)

    downloads: list[TransferProgress] = []
    written = await repo.objects.download_dir(
        "backup", tmp_path / "dst", concurrency=2, progress=downloads.append
    )
    assert sorted(written) == sorted((tmp_path / "dst" / name).resolve() for name in files)
    for relative, content in files.items():
        assert (tmp_path / "dst" / relative).read_bytes() == content
    assert not list((tmp_path / "dst").rglob(".*.lamina-part"))
    assert downloads[-1] == TransferProgress(total, total, len(files), len(files))
    assert all(p.bytes_done <= p.bytes_total for p in downloads)


async def test_download_dir_of_a_commit_and_of_a_session(
    repo: AsyncRepository, tmp_path: Path
) -> None:
    async with repo.session() as session:
        await session.objects.put("cfg/app.toml", b"v = 1")
        first = await session.commit("v1")
    async with repo.session() as session:
        await session.objects.put("cfg/app.toml", b"v = 2")
        await session.objects.put("cfg/extra.toml", b"x")
        await session.objects.download_dir("cfg/", tmp_path / "staged")
        await session.rollback()
    assert (tmp_path / "staged" / "app.toml").read_bytes() == b"v = 2"
    assert (tmp_path / "staged" / "extra.toml").read_bytes() == b"x"

    assert first
    old = (await repo.commits.get(first)).objects
    written = await old.download_dir("cfg", tmp_path / "old")
    assert [path.name for path in written] == ["app.toml"]
    assert (tmp_path / "old" / "app.toml").read_bytes() == b"v = 1"


async def test_upload_dir_of_a_missing_folder_is_an_error(
    repo: AsyncRepository, tmp_path: Path
) -> None:
    async with repo.session() as session:
        with pytest.raises(LaminaError):
            await session.objects.upload_dir(tmp_path / "missing")
        assert await session.objects.upload_dir(tmp_path) == []  # an empty folder uploads nothing


async def test_upload_dir_takes_links_to_files_not_to_folders(
    repo: AsyncRepository, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    (source / "real" / "deeper").mkdir(parents=True)
    (source / "real" / "deeper" / "b.txt").write_bytes(b"b")
    (source / "real-a.txt").write_bytes(b"a")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (source / "link.txt").symlink_to(tmp_path / "outside.txt")
    (source / "folder-link").symlink_to(source / "real", target_is_directory=True)
    async with repo.session() as session:
        results = await session.objects.upload_dir(source, "up")
        await session.commit("links")
    # In path order, folder by folder: "real/..." before "real-a.txt".
    assert [result.path for result in results] == [
        "up/link.txt",
        "up/real/deeper/b.txt",
        "up/real-a.txt",
    ]
    async with repo.objects.get("up/link.txt") as reader:
        assert await reader.read() == b"outside"
