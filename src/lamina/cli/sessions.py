"""``lamina sessions``: list the open ones, open one, see what it holds, commit it or roll it
back."""

from __future__ import annotations

import click

from lamina.cli.app import CONTEXT_SETTINGS, State, pass_state, run
from lamina.cli.locations import parse_repository
from lamina.cli.output import emit_json, note, table, when
from lamina.cli.writes import conclude
from lamina.models.objects import EntryRecord
from lamina.models.sessions import OpenSession

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("sessions", context_settings=CONTEXT_SETTINGS)
def sessions() -> None:
    """Work with open sessions: the writes that `cp` and `rm` staged without -m.

    \b
    Examples:
      lamina sessions ls acme/datasets
      lamina sessions open acme/datasets
      lamina cp -r ./raw acme/datasets/raw/ --session 5b1f...
      lamina sessions changes acme/datasets 5b1f...
      lamina sessions commit acme/datasets 5b1f... -m "import raw"
      lamina sessions rollback acme/datasets 5b1f...
    """


@sessions.command("ls")
@click.argument("repository")
@json_option
@pass_state
def list_sessions(state: State, repository: str, as_json: bool) -> None:
    """List the repository's open sessions (and those held for approval), oldest first.

    \b
    Examples:
      lamina sessions ls acme/datasets
      lamina sessions ls acme/datasets --json
    """
    target = parse_repository(repository)

    async def body() -> list[OpenSession]:
        async with state.client() as client:
            return [s async for s in client.repository(target.repository).open_sessions()]

    found = sorted(run(body), key=lambda s: (s.created_at, s.session_id))
    if as_json:
        emit_json(found)
        return
    rows = [
        (s.session_id, when(s.created_at), s.state, f"{s.created_by_type} {s.created_by_name}")
        for s in found
    ]
    table(("SESSION", "OPENED", "STATE", "BY"), rows)


@sessions.command("open")
@click.argument("repository")
@pass_state
def open_session(state: State, repository: str) -> None:
    """Open a session and print its id (stage into it with --session ID).

    \b
    Example:
      lamina sessions open acme/datasets
    """
    target = parse_repository(repository)

    async def body() -> str:
        async with state.client() as client:
            return (await client.repository(target.repository).session()).session_id

    click.echo(run(body))


@sessions.command("changes")
@click.argument("repository")
@click.argument("session_id")
@click.option("--prefix", help="Only paths under this prefix.")
@json_option
@pass_state
def changes(
    state: State, repository: str, session_id: str, prefix: str | None, as_json: bool
) -> None:
    """List a session's uncommitted changes (W: written, D: deleted).

    \b
    Examples:
      lamina sessions changes acme/datasets 5b1f...
      lamina sessions changes acme/datasets 5b1f... --prefix raw/ --json
    """
    target = parse_repository(repository)

    async def body() -> list[EntryRecord]:
        async with state.client() as client:
            session = client.repository(target.repository).attach(session_id)
            return [record async for record in session.uncommitted(prefix=prefix, page_size=1000)]

    records = run(body)
    if as_json:
        emit_json(records)
        return
    for record in records:
        mark = "D" if record.entry is None else "W"
        size = "" if record.entry is None else f"  ({record.entry.size} bytes)"
        click.echo(f"{mark}  {record.path}{size}")
    if not records:
        note("(no changes)")


@sessions.command("commit")
@click.argument("repository")
@click.argument("session_id")
@click.option("-m", "--message", metavar="MESSAGE", required=True, help="The commit message.")
@pass_state
def commit(state: State, repository: str, session_id: str, message: str) -> None:
    """Commit a session: its changes land whole, or not at all (a conflict is an error).

    \b
    Example:
      lamina sessions commit acme/datasets 5b1f... -m "import raw"
    """
    target = parse_repository(repository)

    async def body() -> None:
        async with state.client() as client:
            repo = client.repository(target.repository)
            await conclude(repo, repo.attach(session_id), message)

    run(body)


@sessions.command("rollback")
@click.argument("repository")
@click.argument("session_id")
@pass_state
def rollback(state: State, repository: str, session_id: str) -> None:
    """Discard a session's changes and close it.

    \b
    Example:
      lamina sessions rollback acme/datasets 5b1f...
    """
    target = parse_repository(repository)

    async def body() -> None:
        async with state.client() as client:
            await client.repository(target.repository).attach(session_id).rollback()

    run(body)
    click.echo(f"Rolled back session {session_id}.")


COMMANDS = [sessions]
