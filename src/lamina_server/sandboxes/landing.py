"""Landing a sandbox: what it changed under its mount becomes one commit, or nothing.

The runner has stopped, so the overlay's upper directory is final. :func:`capture` reads only
that directory (the cost follows the size of the change, not of the repository); new and
changed files are stored as blobs and staged, removals staged as deletes, in the sandbox's
session, which then commits through the same three-way merge as any session. A sandbox that
changed nothing ends ``done/no_changes`` and its session is rolled back. What the capture
refuses (a name that is not a valid repository path) fails the landing whole
(``failed/commit_failed``, naming the paths): nothing lands. What it skips (symbolic links,
devices, fifos, sockets: never followed, never stored) is noted in the sandbox's log.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from lamina_server.authz import Action
from lamina_server.governance.audit import note_commit
from lamina_server.principals import Committer
from lamina_server.sandboxes.capture import Capture, capture
from lamina_server.sandboxes.gate import PolicyGate, Verdict, acting_as
from lamina_server.sandboxes.models import (
    AWAITING_APPROVAL,
    COMMIT_FAILED,
    COMMITTED,
    DONE,
    FAILED,
    META_SANDBOX_ID,
    META_TRIGGER_DEPTH,
    META_TRIGGER_ID,
    NO_CHANGES,
    POLICY_VIOLATION,
    Outcome,
    SandboxRecord,
)
from lamina_server.storage import journal
from lamina_server.storage.blobs import BlobStore
from lamina_server.storage.columns import utcnow
from lamina_server.versioning import VersionStore
from lamina_server.versioning.errors import ConcurrentUpdate, MergeConflict
from lamina_server.versioning.models import Entry

READ_SIZE = 1024 * 1024
STAGE_BATCH = 1000  # entries staged per transaction
MAX_DECISIONS = 1000  # the policy decisions a sandbox's record keeps (its evidence lists them)

# Holds the staged change (message, metadata, committer) for approval when that is needed:
# the approval page's URL, or None to commit now.
Hold = Callable[[str, dict[str, str], Committer], Awaitable[str | None]]
SHOWN_PATHS = 10


def repository_path(prefix: str, relative: str) -> str:
    """Where a path under the mount lives in the repository."""
    if not prefix:
        return relative
    return f"{prefix.rstrip('/')}/{relative}"


def _shown(paths: list[str]) -> str:
    more = f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
    return ", ".join(paths[:SHOWN_PATHS]) + more


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as source:
        while chunk := await source.read(READ_SIZE):
            yield chunk


async def land(
    record: SandboxRecord,
    *,
    upper: Path,
    lower: Path,
    versions: VersionStore,
    blobs: BlobStore,
    gate: PolicyGate,
    note: Callable[[str], None],
    decide: Callable[[Verdict], None],
    hold: Hold,
    landing_entries: Sequence[journal.Entry],
    exit_code: int | None,
) -> Outcome:
    """Captures, checks, stages and commits what the sandbox changed; its outcome. Each
    policy decision taken is told to ``decide``; ``hold`` holds the staged change for approval
    when the repository's rule (or the run) asks for it, answering its page's URL. The
    ``landing_entries`` (its audit record) are written with the commit, or the hold."""
    assert record.session_id is not None
    repository_id, session_id = record.repository_id, record.session_id
    prefix = record.request.path_prefix
    found: Capture = await anyio.to_thread.run_sync(capture, upper, lower)
    for skipped in found.skipped:
        note(f"not captured: {skipped.path} ({skipped.reason})")
    code = 0 if exit_code is None else exit_code
    if found.refused:
        paths = [f"{problem.path} ({problem.reason})" for problem in found.refused]
        for line in paths:
            note(f"refused: {line}")
        return Outcome(
            FAILED,
            COMMIT_FAILED,
            exit_code=code,
            error_message=f"nothing landed: {len(paths)} path(s) cannot be stored: "
            + _shown(paths),
        )
    if not found.puts and not found.deletes:
        await versions.rollback_session(repository_id, session_id)
        return Outcome(DONE, NO_CHANGES, exit_code=code)

    # What goes, as object paths: removed files, and every object under a removed folder.
    removed = [repository_path(prefix, gone.path) for gone in found.deletes if not gone.is_prefix]
    for gone in found.deletes:
        if gone.is_prefix:
            removed += await _objects_under(
                versions, repository_id, session_id, repository_path(prefix, gone.path)
            )
    written = [repository_path(prefix, put.path) for put in found.puts]
    verdicts = await gate.judge(
        acting_as(record),
        repository_id,
        [(Action.DELETE_OBJECT, path) for path in dict.fromkeys(removed)]
        + [(Action.PUT_OBJECT, path) for path in written],
    )
    for verdict in verdicts[:MAX_DECISIONS]:
        decide(verdict)
    refusals = [verdict.refusal for verdict in verdicts if not verdict.allowed]
    if refusals:
        for line in refusals:
            note(f"refused: {line}")
        return Outcome(
            FAILED,
            POLICY_VIOLATION,
            exit_code=code,
            error_message=f"nothing landed: {len(refusals)} change(s) are not allowed to "
            f"{acting_as(record).name}: " + _shown(refusals),
        )

    entries: list[tuple[str, Entry]] = []
    for put, path in zip(found.puts, written, strict=True):
        address = blobs.new_address()
        info = await blobs.write(address, _chunks(put.source))
        stored = await blobs.claim(address)
        content_type = mimetypes.guess_type(put.path)[0] or "application/octet-stream"
        entries.append((path, Entry(stored, info.size, info.etag, content_type, utcnow(), {})))
    # Deletes first: a folder removed and made again (an opaque one) loses what it held,
    # then gains what it holds now.
    if removed:
        await versions.stage_delete_many(repository_id, session_id, removed)
    for start in range(0, len(entries), STAGE_BATCH):
        await versions.stage_put_many(
            repository_id, session_id, entries[start : start + STAGE_BATCH]
        )

    metadata = {META_SANDBOX_ID: record.id}
    if record.trigger_id:
        metadata[META_TRIGGER_ID] = record.trigger_id
        metadata[META_TRIGGER_DEPTH] = str(record.trigger_depth)
    command = " ".join(record.request.command)
    message = (f"Sandbox {record.id}" + (f": {command}" if command else ""))[:1000]
    try:
        with journal.carrying(landing_entries):
            web_url = await hold(message, metadata, _committer(record))
            if web_url is not None:
                return Outcome(DONE, AWAITING_APPROVAL, exit_code=code, web_url=web_url)
            commit_id = await versions.commit_session(
                repository_id,
                session_id,
                message=message,
                metadata=metadata,
                committer=_committer(record),
                also=note_commit,
            )
    except MergeConflict as exc:
        return Outcome(
            FAILED,
            COMMIT_FAILED,
            exit_code=code,
            error_message=f"the sandbox's changes conflict with changes committed meanwhile on "
            f"{len(exc.paths)} path(s): {_shown(exc.paths)}",
        )
    except ConcurrentUpdate as exc:
        return Outcome(FAILED, COMMIT_FAILED, exit_code=code, error_message=str(exc))
    return Outcome(DONE, COMMITTED, exit_code=code, commit_id=commit_id)


async def _objects_under(
    versions: VersionStore, repository_id: str, session_id: str, prefix: str
) -> list[str]:
    """Every object of the session's view under a folder the sandbox removed."""
    directory = prefix.rstrip("/") + "/"
    paths: list[str] = []
    after: str | None = None
    while True:
        page = await versions.list_objects(
            repository_id, session_id=session_id, prefix=directory, after=after, amount=1000
        )
        paths += [item.path for item in page.items if item.entry is not None]
        if not page.has_more:
            return paths
        after = page.next_offset


def _committer(record: SandboxRecord) -> Committer:
    """The sandbox's commit is its principal's: the ``run_as`` one, else its creator."""
    actor = acting_as(record)
    return Committer(actor.type, actor.id, actor.name)
