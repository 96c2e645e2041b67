"""Commits against the real server: log, get, timeline, diff, revert, reads at a commit."""

from __future__ import annotations

import pytest

from lamina import AsyncCommit, AsyncRepository, ConflictError, NotFoundError

pytestmark = pytest.mark.anyio


async def commit_files(repo: AsyncRepository, message: str, **files: bytes | None) -> str:
    """Commit puts (bytes) and deletes (None) of ``name_with_underscores -> name.with.dots``."""
    async with repo.session() as session:
        for name, data in files.items():
            path = name.replace("__", "/").replace("_", ".")
            if data is None:
                await session.objects.delete(path)
            else:
                await session.objects.put(path, data)
        commit_id = await session.commit(message)
    assert commit_id
    return commit_id


async def test_log_get_and_timeline(repo: AsyncRepository) -> None:
    first = await commit_files(repo, "first", a_txt=b"1")
    second = await commit_files(repo, "second", b_txt=b"2")

    listed = [commit async for commit in repo.commits.list()]
    assert [commit.id for commit in listed[:2]] == [second, first]
    assert [commit.message for commit in listed[:2]] == ["second", "first"]
    assert listed[0].parents == (first,)
    assert listed[0].committer
    assert listed[0].creation_date is not None
    assert len(listed) == 3  # plus the repository's initial commit

    assert [commit.id async for commit in repo.commits.list(amount=1)] == [second]
    assert [commit.id async for commit in repo.commits.list(page_size=1)] == [
        commit.id for commit in listed
    ]
    assert [commit.id async for commit in repo.timeline()] == [commit.id for commit in listed]
    assert [commit.id async for commit in repo.commits.list(ref=first)] == [
        commit.id for commit in listed[1:]
    ]

    fetched = await repo.commits.get(first)
    assert fetched == listed[1]
    assert fetched.message == "first"
    assert fetched.object_count == 1

    with pytest.raises(NotFoundError):
        await repo.commits.get("0" * 64)


async def test_diff_reports_changes_against_first_parent(repo: AsyncRepository) -> None:
    await commit_files(repo, "seed", keep_txt=b"k", change_txt=b"old", drop_txt=b"d")
    commit_id = await commit_files(
        repo, "edit", change_txt=b"new", drop_txt=None, dir__new_txt=b"n"
    )
    commit = await repo.commits.get(commit_id)
    changes = {change.path: change.status async for change in commit.diff()}
    assert changes == {"change.txt": "modified", "drop.txt": "removed", "dir/new.txt": "added"}

    rolled_up = [(change.path, change.type) async for change in commit.diff(delimiter="/")]
    assert ("dir/", "prefix") in rolled_up
    only_dir = [change.path async for change in commit.diff(prefix="dir/")]
    assert only_dir == ["dir/new.txt"]
    paged = [change.path async for change in commit.diff(page_size=1)]
    assert sorted(paged) == sorted(changes)


async def test_root_commit_diff_is_empty(repo: AsyncRepository) -> None:
    [root] = [commit async for commit in repo.commits.list()]
    assert root.parents == ()
    assert [change async for change in root.diff()] == []


async def test_revert_returns_lazy_commit(repo: AsyncRepository) -> None:
    await commit_files(repo, "seed", a_txt=b"v1")
    change = await commit_files(repo, "change", a_txt=b"v2", b_txt=b"new")
    commit = await repo.commits.get(change)

    reverted = await commit.revert(message="undo change")
    assert isinstance(reverted, AsyncCommit)
    loaded = await reverted  # the blocking twin loads on first access instead
    assert loaded.message == "undo change"
    assert loaded.parents == (change,)

    assert [entry.path async for entry in repo.objects.list()] == ["a.txt"]
    async with repo.objects.get("a.txt") as reader:
        assert await reader.read() == b"v1"

    with pytest.raises(ConflictError):  # b.txt changed again since: reverting twice conflicts
        await commit.revert()


async def test_commit_objects_read_the_old_version(repo: AsyncRepository) -> None:
    old = await commit_files(repo, "v1", doc_txt=b"version one", gone_txt=b"bye")
    await commit_files(repo, "v2", doc_txt=b"version two", gone_txt=None)

    at_old = (await repo.commits.get(old)).objects
    async with at_old.get("doc.txt") as reader:
        assert await reader.read() == b"version one"
    assert (await at_old.head("doc.txt")).content_length == len(b"version one")
    assert [entry.path async for entry in at_old.list()] == ["doc.txt", "gone.txt"]

    async with repo.objects.get("doc.txt") as reader:
        assert await reader.read() == b"version two"
    with pytest.raises(NotFoundError):
        await repo.objects.head("gone.txt")
