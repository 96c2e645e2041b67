"""Writes from the command line go through a session: opened for the command (or attached
with ``--session``), then committed with ``-m`` or left open for later, its id printed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click

from lamina._async.resources.repositories import AsyncRepository
from lamina._async.resources.sessions import AsyncSession
from lamina.cli.output import note

message_option = click.option(
    "-m", "--message", metavar="MESSAGE", help="Commit the change with this message."
)
session_option = click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Stage into this open session (from an earlier command or `lamina sessions open`).",
)


@asynccontextmanager
async def writing(
    repo: AsyncRepository, session_id: str | None, message: str | None
) -> AsyncIterator[AsyncSession]:
    """A session to stage in; on leaving, the commit (``message``) or the note that it is
    open. When the block fails the session stays open and its id is printed, to resume."""
    session = repo.attach(session_id) if session_id else await repo.session()
    try:
        yield session
    except BaseException:
        note(
            f"Session {session.session_id} stays open: resume with --session "
            f"{session.session_id}, or discard it with "
            f"`lamina sessions rollback {repo.path} {session.session_id}`."
        )
        raise
    await conclude(repo, session, message)


async def conclude(repo: AsyncRepository, session: AsyncSession, message: str | None) -> None:
    """Commit with ``message`` and say how it went, or say the session is open."""
    if message is None:
        click.echo(f"Staged in session {session.session_id} (not committed).")
        note(f"Commit it with: lamina sessions commit {repo.path} {session.session_id} -m MESSAGE")
        return
    result = await session.commit_result(message)
    if result.status == "committed":
        click.echo(f"Committed {result.commit_id}")
    else:
        click.echo(f"Awaiting approval: {result.web_url}")
        note(f"Session {session.session_id} lands when a reviewer approves it.")
