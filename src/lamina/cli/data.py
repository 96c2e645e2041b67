"""Reading and changing objects: ``ls``, ``cat``, ``rm``, ``log``, ``diff``, ``revert``."""

from __future__ import annotations

import builtins
import sys
from typing import Any

import click

from lamina._async._client import AsyncClient
from lamina._async.resources.commits import AsyncCommit
from lamina._async.resources.objects import AsyncReadOnlyObjects
from lamina._async.resources.repositories import AsyncRepository
from lamina.cli.app import CONTEXT_SETTINGS, State, fail, pass_state, run
from lamina.cli.locations import RemotePath, parse_remote, parse_repository
from lamina.cli.output import emit_json, note, when
from lamina.cli.writes import message_option, session_option, writing
from lamina.models.commits import CommitData
from lamina.models.objects import ListingEntry

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def objects_at(repo: AsyncRepository, ref: str | None) -> AsyncReadOnlyObjects:
    """The repository's objects at HEAD, or at the commit ``ref``."""
    return AsyncReadOnlyObjects(repo, ref=ref)


async def list_entries(
    objects: AsyncReadOnlyObjects, path: str, recursive: bool
) -> builtins.list[ListingEntry]:
    """The entries under ``path``; a path naming only a folder (``raw``) lists the folder."""
    delimiter = None if recursive else "/"

    async def listing(prefix: str) -> builtins.list[ListingEntry]:
        pager = objects.list(prefix=prefix or None, delimiter=delimiter, page_size=1000)
        return [entry async for entry in pager]

    entries = await listing(path)
    if path and not path.endswith("/"):
        folder = path + "/"
        if recursive and entries and all(entry.path.startswith(folder) for entry in entries):
            return entries
        if [entry.path for entry in entries] == [folder]:
            return await listing(folder)
    return entries


@click.command("ls", context_settings=CONTEXT_SETTINGS)
@click.argument("location")
@click.option("-l", "long", is_flag=True, help="Show sizes (bytes) and modification times.")
@click.option("-r", "--recursive", is_flag=True, help="List everything below, not one level.")
@json_option
@pass_state
def ls(state: State, location: str, long: bool, recursive: bool, as_json: bool) -> None:
    """List objects and folders under org/repo[@commit]/prefix (or the repositories of an org).

    \b
    Examples:
      lamina ls acme                       # the organization's repositories
      lamina ls acme/datasets              # the top level of a repository
      lamina ls -l acme/datasets/raw/      # with sizes and times
      lamina ls -r acme/datasets@3f2a9c/raw --json
    """
    if "/" not in location.removeprefix("lamina://"):
        _list_repositories(state, location.removeprefix("lamina://"), long, as_json)
        return
    target = parse_remote(location)

    async def body() -> builtins.list[ListingEntry]:
        async with state.client() as client:
            repo = client.repository(target.repository)
            return await list_entries(objects_at(repo, target.ref), target.path, recursive)

    entries = run(body)
    if as_json:
        emit_json(entries)
        return
    for entry in entries:
        if not long:
            click.echo(entry.path)
        elif entry.entry is None:
            click.echo(f"{'-':>12}  {'-':<19}  {entry.path}")
        else:
            click.echo(f"{entry.entry.size:>12}  {when(entry.entry.last_modified)}  {entry.path}")


def _list_repositories(state: State, org: str, long: bool, as_json: bool) -> None:
    async def body() -> builtins.list[Any]:
        async with state.client() as client:
            return [repo.data async for repo in client.organization(org).repositories.list()]

    repositories = run(body)
    if as_json:
        emit_json(repositories)
        return
    for data in repositories:
        if long:
            click.echo(f"{when(data.created_at)}  {org}/{data.name}  {data.description}".rstrip())
        else:
            click.echo(f"{org}/{data.name}")


@click.command("cat", context_settings=CONTEXT_SETTINGS)
@click.argument("locations", nargs=-1, required=True)
@pass_state
def cat(state: State, locations: tuple[str, ...]) -> None:
    """Write objects' bytes to stdout, one after the other.

    \b
    Examples:
      lamina cat acme/datasets/raw/a.csv
      lamina cat acme/datasets@3f2a9c/config.yaml > old-config.yaml
    """
    targets = [parse_remote(location) for location in locations]
    for target in targets:
        if target.is_folder:
            fail(f"{target} is a folder, not an object (see: lamina ls {target})")
    out = sys.stdout.buffer

    async def body() -> None:
        async with state.client() as client:
            for target in targets:
                objects = objects_at(client.repository(target.repository), target.ref)
                async with objects.get(target.path) as reader:
                    async for chunk in reader.iter_bytes(None):
                        out.write(chunk)
        out.flush()

    run(body)


@click.command("rm", context_settings=CONTEXT_SETTINGS)
@click.argument("locations", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Remove every object under a folder.")
@message_option
@session_option
@pass_state
def rm(
    state: State,
    locations: tuple[str, ...],
    recursive: bool,
    message: str | None,
    session_id: str | None,
) -> None:
    """Remove objects (in a session: commit with -m, or keep it open).

    \b
    Examples:
      lamina rm acme/datasets/raw/old.csv -m "drop old.csv"
      lamina rm -r acme/datasets/tmp/ -m "clean up"
      lamina rm acme/datasets/a.txt --session 5b1f...   # staged, not committed
    """
    targets = [parse_remote(location, allow_ref=False) for location in locations]
    repositories = {target.repository for target in targets}
    if len(repositories) != 1:
        fail("rm takes paths of one repository at a time")
    for target in targets:
        if target.is_folder and not recursive:
            fail(f"{target} is a folder: use -r to remove everything under it")

    async def body() -> None:
        async with state.client() as client:
            repo = client.repository(targets[0].repository)
            seen = repo.attach(session_id).objects if session_id else repo.objects
            paths = await _paths_to_remove(seen, targets, recursive)
            if not paths:
                fail(f"no objects at {', '.join(str(target) for target in targets)}")
            async with writing(repo, session_id, message) as session:
                deleted = await session.objects.delete_many(paths)
                click.echo(f"Removed {deleted} object{'s' if deleted != 1 else ''}.")

    run(body)


async def _paths_to_remove(
    objects: AsyncReadOnlyObjects, targets: builtins.list[RemotePath], recursive: bool
) -> builtins.list[str]:
    """The object paths the targets name; a missing object is a ``NotFoundError``."""
    paths: builtins.list[str] = []
    for target in targets:
        if recursive:
            entries = await list_entries(objects, target.path, recursive=True)
            paths += [entry.path for entry in entries if entry.type == "object"]
        else:
            await objects.head(target.path)
            paths.append(target.path)
    return paths


@click.command("log", context_settings=CONTEXT_SETTINGS)
@click.argument("location")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N commits.")
@json_option
@pass_state
def log(state: State, location: str, max_count: int | None, as_json: bool) -> None:
    """Show the commits of a repository, newest first (from HEAD, or from @commit).

    \b
    Examples:
      lamina log acme/datasets
      lamina log acme/datasets@3f2a9c -n 5 --json
    """
    target = parse_remote(location)

    async def body() -> builtins.list[CommitData]:
        async with state.client() as client:
            repo = client.repository(target.repository)
            pager = repo.commits.list(ref=target.ref, amount=max_count)
            return [commit.data async for commit in pager]

    commits = run(body)
    if as_json:
        emit_json(commits)
        return
    for commit in commits:
        subject = commit.message.splitlines()[0] if commit.message else ""
        click.echo(f"{commit.id}  {when(commit.creation_date)}  {commit.committer}  {subject}")


_STATUS = {"added": "A", "modified": "M", "removed": "D"}


@click.command("diff", context_settings=CONTEXT_SETTINGS)
@click.argument("repository")
@click.argument("refs", nargs=-1, required=True)
@click.option("--prefix", help="Only paths under this prefix.")
@json_option
@pass_state
def diff(
    state: State, repository: str, refs: tuple[str, ...], prefix: str | None, as_json: bool
) -> None:
    """Show what changed: in one commit (against its parent), or from REF to a second REF.

    Lines read A (added), M (modified) or D (removed), then the path.

    \b
    Examples:
      lamina diff acme/datasets 3f2a9c
      lamina diff acme/datasets 3f2a9c 9d8e7f --prefix raw/
    """
    if len(refs) > 2:
        fail("diff takes one commit, or two to compare")
    target = parse_repository(repository)

    async def body() -> builtins.list[ListingEntry]:
        async with state.client() as client:
            repo = client.repository(target.repository)
            if len(refs) == 1:
                pager = AsyncCommit(repo, refs[0]).diff(prefix=prefix)
            else:
                pager = _between(client, repo, refs[0], refs[1], prefix)
            return [entry async for entry in pager]

    entries = run(body)
    if as_json:
        emit_json(entries)
        return
    for entry in entries:
        click.echo(f"{_STATUS.get(entry.status or '', '?')}  {entry.path}")


def _between(
    client: AsyncClient, repo: AsyncRepository, left: str, right: str, prefix: str | None
) -> Any:
    params = {"left": left, "right": right, "prefix": prefix}
    return client.paginate(f"{repo.api_path}/diff", ListingEntry, params=params, page_size=1000)


@click.command("revert", context_settings=CONTEXT_SETTINGS)
@click.argument("repository")
@click.argument("commit")
@click.option("-m", "--message", metavar="MESSAGE", help="The revert's message.")
@pass_state
def revert(state: State, repository: str, commit: str, message: str | None) -> None:
    """Make a new commit that undoes COMMIT.

    \b
    Example:
      lamina revert acme/datasets 3f2a9c -m "undo the bad import"
    """
    target = parse_repository(repository)

    async def body() -> str:
        async with state.client() as client:
            repo = client.repository(target.repository)
            return (await AsyncCommit(repo, commit).revert(message=message)).id

    click.echo(f"Committed {run(body)}")
    note(f"(reverting {commit})")


COMMANDS = [ls, cat, rm, log, diff, revert]
