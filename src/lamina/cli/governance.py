"""Governance: ``lamina approvals`` (commits held for review) and ``lamina audit``."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from lamina.cli.app import CONTEXT_SETTINGS, State, pass_state, run
from lamina.cli.locations import parse_repository
from lamina.cli.output import emit_json, table, when
from lamina.models.governance import Approval, AuditEntry

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("approvals", context_settings=CONTEXT_SETTINGS)
def approvals() -> None:
    """Commits held for a second principal's approval.

    \b
    Examples:
      lamina approvals ls acme/models --state pending
      lamina approvals approve acme/models 5b1f... -m "reviewed"
      lamina approvals reject acme/models 5b1f... --reason "wrong prefix"
    """


@approvals.command("ls")
@click.argument("repository")
@click.option(
    "--state",
    "state_filter",
    type=click.Choice(["pending", "approved", "rejected", "withdrawn"]),
    help="Only requests in this state.",
)
@json_option
@pass_state
def approvals_ls(state: State, repository: str, state_filter: str | None, as_json: bool) -> None:
    """List the repository's approval requests, newest first.

    \b
    Examples:
      lamina approvals ls acme/models
      lamina approvals ls acme/models --state pending --json
    """
    target = parse_repository(repository)

    async def body() -> list[Approval]:
        async with state.client() as client:
            pager = client.repository(target.repository).approvals.list(state=state_filter)
            return [item async for item in pager]

    found = run(body)
    if as_json:
        emit_json(found)
        return
    rows = [
        (
            item.session_id,
            item.state,
            item.requested_by.name if item.requested_by else "",
            when(item.requested_at),
            item.message,
        )
        for item in found
    ]
    table(("SESSION", "STATE", "REQUESTED BY", "REQUESTED", "MESSAGE"), rows)


@approvals.command("approve")
@click.argument("repository")
@click.argument("session_id")
@click.option("-m", "--message", help="The commit message (default: the requester's).")
@pass_state
def approvals_approve(state: State, repository: str, session_id: str, message: str | None) -> None:
    """Approve a held commit: its changes land.

    \b
    Example:
      lamina approvals approve acme/models 5b1f... -m "reviewed"
    """
    target = parse_repository(repository)

    async def body() -> str:
        async with state.client() as client:
            return await client.repository(target.repository).approvals.approve(session_id, message)

    click.echo(f"Committed {run(body)}")


@approvals.command("reject")
@click.argument("repository")
@click.argument("session_id")
@click.option("--reason", default="", help="Why (shown to the requester).")
@pass_state
def approvals_reject(state: State, repository: str, session_id: str, reason: str) -> None:
    """Reject a held commit: its changes are rolled back.

    \b
    Example:
      lamina approvals reject acme/models 5b1f... --reason "wrong prefix"
    """
    target = parse_repository(repository)

    async def body() -> Approval:
        async with state.client() as client:
            return await client.repository(target.repository).approvals.reject(session_id, reason)

    click.echo(f"Rejected session {run(body).session_id}.")


@click.group("audit", context_settings=CONTEXT_SETTINGS)
def audit() -> None:
    """An organization's audit log.

    \b
    Examples:
      lamina audit ls acme -n 20
      lamina audit ls acme --action CommitSession --since 2026-05-01 --json
    """


@audit.command("ls")
@click.argument("organization")
@click.option("--action", help="Only this action (e.g. CommitSession).")
@click.option("--principal", help="Only this principal (id or name).")
@click.option("--outcome", help="Only this outcome (success, denied, ...).")
@click.option("--since", type=click.DateTime(), help="At or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="Before this time (UTC).")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N entries.")
@json_option
@pass_state
def audit_ls(
    state: State,
    organization: str,
    action: str | None,
    principal: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    max_count: int | None,
    as_json: bool,
) -> None:
    """List audit entries, oldest first.

    \b
    Examples:
      lamina audit ls acme -n 20
      lamina audit ls acme --action CommitSession --since 2026-05-01 --json
    """

    async def body() -> list[AuditEntry]:
        async with state.client() as client:
            pager = client.organization(organization).audit_log.list(
                action=action,
                principal=principal,
                outcome=outcome,
                since=_utc(since),
                until=_utc(until),
                amount=max_count,
            )
            return [entry async for entry in pager]

    found = run(body)
    if as_json:
        emit_json(found)
        return
    rows = [
        (e.seq, when(e.time), e.principal_name or e.principal_id, e.action, e.outcome, e.resource)
        for e in found
    ]
    table(("SEQ", "TIME", "PRINCIPAL", "ACTION", "OUTCOME", "RESOURCE"), rows)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=timezone.utc)


COMMANDS = [approvals, audit]
