"""``lamina cp``: copies between local paths and repositories, in either direction, with a
progress bar of bytes and files."""

from __future__ import annotations

import contextlib
import os
import sys
from functools import partial
from pathlib import Path
from typing import BinaryIO

import click

from lamina._async._client import AsyncClient
from lamina._async.resources.objects import AsyncReadOnlyObjects, AsyncSessionObjects
from lamina._concurrency import agather_bounded
from lamina.cli.app import CONTEXT_SETTINGS, State, fail, pass_state, run
from lamina.cli.data import list_entries, objects_at
from lamina.cli.locations import RemotePath, is_remote, parse_remote
from lamina.cli.progress import TransferDisplay
from lamina.cli.writes import message_option, session_option, writing


@click.command("cp", context_settings=CONTEXT_SETTINGS)
@click.argument("source")
@click.argument("destination")
@click.option("-r", "--recursive", is_flag=True, help="Copy a folder and everything under it.")
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Files (and parts) in flight at once.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show the progress bar (default: when stderr is a terminal).",
)
@message_option
@session_option
@pass_state
def cp(
    state: State,
    source: str,
    destination: str,
    recursive: bool,
    concurrency: int,
    progress: bool | None,
    message: str | None,
    session_id: str | None,
) -> None:
    """Copy files into a repository, objects out of one, or objects between repositories.

    A folder copy (-r) copies what is under SOURCE to under DESTINATION. Copies into a
    repository are staged in a session: -m commits it, otherwise its id is printed and it
    stays open (commit it with `lamina sessions commit`, or add to it with --session).
    A local SOURCE or DESTINATION of - is stdin or stdout.

    \b
    Examples:
      lamina cp ./report.csv acme/datasets/reports/ -m "add report"
      lamina cp -r ./raw acme/datasets/raw/ -m "import raw data" -j 16
      lamina cp -r acme/datasets@3f2a9c/raw ./raw-then
      lamina cp acme/datasets/reports/report.csv -
      lamina cp -r acme/datasets/raw/ acme/archive/2026/raw/ -m "archive"
    """
    source_remote, destination_remote = is_remote(source), is_remote(destination)
    if not source_remote and not destination_remote:
        fail("cp needs a repository path on at least one side (org/repo/path)")
    if destination_remote:
        target = parse_remote(destination, allow_ref=False)
        if source_remote:
            origin = parse_remote(source)
            run(
                _copy_remote,
                state,
                origin,
                target,
                recursive,
                concurrency,
                progress,
                message,
                session_id,
            )
        else:
            run(
                _upload,
                state,
                source,
                target,
                recursive,
                concurrency,
                progress,
                message,
                session_id,
            )
        return
    if message is not None or session_id is not None:
        fail("-m and --session are for copies into a repository")
    origin = parse_remote(source)
    run(_download, state, origin, destination, recursive, concurrency, progress)


#: Objects up to this size are copied between repositories through memory in one piece.
_IN_MEMORY = 8 * 1024 * 1024


def _client(state: State, concurrency: int) -> AsyncClient:
    return state.client(max_concurrency=max(64, concurrency * 2))


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(2, "No such file or directory", path)


async def _upload(
    state: State,
    source: str,
    target: RemotePath,
    recursive: bool,
    concurrency: int,
    progress: bool | None,
    message: str | None,
    session_id: str | None,
) -> None:
    local = None if source == "-" else Path(source).expanduser()
    if local is None and target.is_folder:
        fail("a copy from stdin needs an object path, not a folder, as its destination")
    if local is not None and not local.exists():
        raise _missing(source)
    folder = local is not None and local.is_dir()
    if folder and not recursive:
        fail(f"{source} is a folder: use -r to copy it")
    if folder and local is not None and not any(path.is_file() for path in local.rglob("*")):
        fail(f"{source} has no files to copy")
    async with _client(state, concurrency) as client:
        repo = client.repository(target.repository)
        async with writing(repo, session_id, message) as session:
            with TransferDisplay("Uploading", progress) as display:
                if folder and local is not None:
                    await session.objects.upload_dir(
                        local, target.path, concurrency=concurrency, progress=display.update
                    )
                    return
                if local is None:
                    data = sys.stdin.buffer
                    path = target.path
                else:
                    display.expect(local.stat().st_size, 1)
                    data = local
                    path = target.join(local.name) if target.is_folder else target.path
                await session.objects.put(path, data, progress=display.add_bytes)
                display.file_done()


async def _download(
    state: State,
    origin: RemotePath,
    destination: str,
    recursive: bool,
    concurrency: int,
    progress: bool | None,
) -> None:
    async with _client(state, concurrency) as client:
        objects = objects_at(client.repository(origin.repository), origin.ref)
        if recursive:
            if destination == "-":
                fail("a folder cannot be copied to stdout")
            with TransferDisplay("Downloading", progress) as display:
                files = await objects.download_dir(
                    origin.path,
                    Path(destination).expanduser(),
                    concurrency=concurrency,
                    progress=display.update,
                )
            if not files:
                fail(f"no objects under {origin}")
            return
        if origin.is_folder:
            fail(f"{origin} is a folder: use -r to copy it")
        size = (await objects.head(origin.path)).content_length or 0
        with TransferDisplay("Downloading", progress) as display:
            display.expect(size, 1)
            if destination == "-":
                await _to_stream(objects, origin.path, sys.stdout.buffer, display)
            else:
                local = Path(destination).expanduser()
                if local.is_dir() or destination.endswith(("/", os.sep)):
                    local = local / origin.name
                await _to_file(objects, origin.path, local, display)
            display.file_done()


async def _to_stream(
    objects: AsyncReadOnlyObjects, path: str, out: BinaryIO, display: TransferDisplay
) -> None:
    async with objects.get(path) as reader:
        async for chunk in reader.iter_bytes(None):
            out.write(chunk)
            display.add_bytes(len(chunk))
    out.flush()


async def _to_file(
    objects: AsyncReadOnlyObjects, path: str, local: Path, display: TransferDisplay
) -> None:
    """Write the object to ``local`` whole or not at all (a partial file, then a rename)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.lamina-part")
    try:
        with partial.open("wb") as out:
            await _to_stream(objects, path, out, display)
        os.replace(partial, local)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


async def _copy_remote(
    state: State,
    origin: RemotePath,
    target: RemotePath,
    recursive: bool,
    concurrency: int,
    progress: bool | None,
    message: str | None,
    session_id: str | None,
) -> None:
    async with _client(state, concurrency) as client:
        source = objects_at(client.repository(origin.repository), origin.ref)
        if recursive:
            folder = origin.join("")
            entries = await list_entries(source, folder, recursive=True)
            pairs = [
                (entry.path, target.join(entry.path[len(folder) :]), entry.entry.size)
                for entry in entries
                if entry.type == "object" and entry.entry is not None
            ]
        elif origin.is_folder:
            fail(f"{origin} is a folder: use -r to copy it")
        else:
            size = (await source.head(origin.path)).content_length or 0
            pairs = [
                (origin.path, target.join(origin.name) if target.is_folder else target.path, size)
            ]
        if not pairs:
            fail(f"no objects under {origin}")
        # Within one repository at HEAD the server copies without moving bytes.
        server_side = origin.repository == target.repository and origin.ref is None
        repo = client.repository(target.repository)
        async with writing(repo, session_id, message) as session:
            with TransferDisplay("Copying", progress) as display:
                display.expect(sum(size for _, _, size in pairs), len(pairs))
                await agather_bounded(
                    [
                        partial(
                            _copy_one, source, session.objects, src, dst, size, server_side, display
                        )
                        for src, dst, size in pairs
                    ],
                    concurrency,
                )


async def _copy_one(
    source: AsyncReadOnlyObjects,
    destination: AsyncSessionObjects,
    source_path: str,
    destination_path: str,
    size: int,
    server_side: bool,
    display: TransferDisplay,
) -> None:
    if server_side:
        await destination.copy(source_path, destination_path)
        display.add_bytes(size)
    else:
        async with source.get(source_path) as reader:
            if size <= _IN_MEMORY:
                await destination.put(destination_path, await reader.read())
                display.add_bytes(size)
            else:
                await destination.put(
                    destination_path, reader.iter_bytes(None), progress=display.add_bytes
                )
    display.file_done()


COMMANDS = [cp]
