"""Compute next to the data: ``lamina exec`` and ``lamina sandboxes``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping

import anyio
import click

from lamina._async.resources.repositories import AsyncRepository
from lamina._async.resources.sandboxes import (
    SHELL_FINISH_TIMEOUT,
    SHELL_START_TIMEOUT,
    AsyncSandbox,
)
from lamina._errors import ConflictError, LaminaError
from lamina.cli.app import CONTEXT_SETTINGS, State, fail, pass_state, run
from lamina.cli.locations import parse_repository
from lamina.cli.output import emit_json, note, table, when
from lamina.models.sandboxes import SandboxData, SandboxOutcome

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def sandbox_options(function: click.decorators.FC) -> click.decorators.FC:
    """The options that shape a sandbox: image, environment, timeout, mount."""
    for option in reversed(
        [
            click.option("--image", help="The sandbox image (default: the client's default)."),
            click.option(
                "-e", "--env", multiple=True, metavar="NAME=VALUE", help="An environment variable."
            ),
            click.option("--timeout", type=click.IntRange(min=1), help="Most seconds it may run."),
            click.option("--mountpoint", help="Where the repository is mounted (/sandbox)."),
            click.option("--path-prefix", help="Mount only this prefix of the repository."),
        ]
    ):
        function = option(function)
    return function


def parse_env(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``("A=1", "B=2")`` as a mapping; a pair without ``=`` is a usage error."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env or None


def report_outcome(outcome: SandboxOutcome) -> None:
    """Say on stderr how a sandbox ended."""
    if outcome.is_committed:
        note(f"Committed {outcome.commit_id}")
    elif outcome.has_no_changes:
        note("No changes to commit.")
    elif outcome.is_awaiting_approval:
        note(f"Awaiting approval: {outcome.web_url}")
    else:
        note(f"Sandbox ended {outcome.status.describe()}: nothing committed.")


async def cancel_quietly(sandbox: AsyncSandbox) -> None:
    """Cancel the sandbox even while the caller is being cancelled (errors ignored)."""
    with anyio.CancelScope(shield=True), contextlib.suppress(LaminaError):
        await sandbox.cancel()


@click.command("exec", context_settings=CONTEXT_SETTINGS)
@click.argument("repository")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@sandbox_options
@click.option("--stdin", "send_stdin", is_flag=True, help="Send this process's stdin to it.")
@pass_state
def exec_(
    state: State,
    repository: str,
    command: tuple[str, ...],
    image: str | None,
    env: tuple[str, ...],
    timeout: int | None,
    mountpoint: str | None,
    path_prefix: str | None,
    send_stdin: bool,
) -> None:
    """Run a command in a sandbox on the repository, streaming its output live.

    One argument runs through `sh -c`; several run as they are. What the command writes
    under the mount (/sandbox) is committed when it exits 0, and discarded otherwise. The
    exit status is the command's; the outcome is reported on stderr. Ctrl-C cancels it.

    \b
    Examples:
      lamina exec acme/datasets -- ls -la /sandbox
      lamina exec acme/datasets -- 'wc -l /sandbox/raw/*.csv > /sandbox/counts.txt'
      lamina exec acme/datasets -e MODE=fast --timeout 600 -- python /sandbox/job.py
      cat input.json | lamina exec acme/datasets --stdin -- jq .items
    """
    target = parse_repository(repository)
    argv: str | list[str] = command[0] if len(command) == 1 else list(command)
    stdin = sys.stdin.buffer.read() if send_stdin else None
    options = {
        "env": parse_env(env),
        "timeout": timeout,
        "mountpoint": mountpoint,
        "path_prefix": path_prefix,
    }

    async def body() -> int:
        async with state.client() as client:
            repo = client.repository(target.repository)
            return await _execute(repo, image, options, argv, stdin)

    code = run(body)
    click.get_current_context().exit(code if 0 <= code <= 255 else 1)


async def _execute(
    repo: AsyncRepository,
    image: str | None,
    options: Mapping[str, object],
    argv: str | list[str],
    stdin: bytes | None,
) -> int:
    sandbox = await repo.sandboxes.create(image, mode="service", **options)  # type: ignore[arg-type]
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        await sandbox.wait(SHELL_START_TIMEOUT, until="running")
        async with sandbox.process(argv, stdin=stdin) as process:
            async for event in process:
                stream = out if event.stream == "stdout" else err
                stream.write(event.data)
                stream.flush()
            code = await process.wait()
            reason = process.exit_error or process.exit_reason
    except BaseException:
        await cancel_quietly(sandbox)
        raise
    if code != 0:
        await cancel_quietly(sandbox)
        why = f" ({reason})" if reason else ""
        note(f"Exited with code {code}{why}: changes discarded.")
        return code
    with contextlib.suppress(ConflictError):  # already ended: its status says how
        await sandbox.finish()
    outcome = SandboxOutcome.from_status(await sandbox.wait(SHELL_FINISH_TIMEOUT))
    report_outcome(outcome)
    return 0 if outcome.ok else 1


@click.group("sandboxes", context_settings=CONTEXT_SETTINGS)
def sandboxes() -> None:
    """List sandboxes, follow their logs, cancel them.

    \b
    Examples:
      lamina sandboxes ls acme/datasets
      lamina sandboxes logs acme/datasets 7c0e... -f
      lamina sandboxes cancel acme/datasets 7c0e...
    """


@sandboxes.command("ls")
@click.argument("repository")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N.")
@json_option
@pass_state
def sandboxes_ls(state: State, repository: str, max_count: int | None, as_json: bool) -> None:
    """List the repository's sandboxes.

    \b
    Examples:
      lamina sandboxes ls acme/datasets
      lamina sandboxes ls acme/datasets -n 10 --json
    """
    target = parse_repository(repository)

    async def body() -> list[SandboxData]:
        async with state.client() as client:
            pager = client.repository(target.repository).sandboxes.list(amount=max_count)
            return [sandbox.data async for sandbox in pager]

    found = run(body)
    if as_json:
        emit_json(found)
        return
    rows = [
        (
            data.id,
            data.to_status().describe(),
            data.mode,
            when(data.created_at),
            " ".join(data.command or ()),
        )
        for data in found
    ]
    table(("ID", "STATUS", "MODE", "CREATED", "COMMAND"), rows)


@sandboxes.command("logs")
@click.argument("repository")
@click.argument("sandbox_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines until the sandbox ends.")
@pass_state
def sandboxes_logs(state: State, repository: str, sandbox_id: str, follow: bool) -> None:
    """Print a sandbox's log (its main command's output).

    \b
    Examples:
      lamina sandboxes logs acme/datasets 7c0e...
      lamina sandboxes logs acme/datasets 7c0e... -f
    """
    target = parse_repository(repository)
    out = sys.stdout.buffer

    async def body() -> None:
        async with state.client() as client:
            sandbox = AsyncSandbox(client.repository(target.repository), sandbox_id)
            if not follow:
                status = await sandbox.status()
                if status.is_active:
                    fail(f"sandbox {sandbox_id} is still {status.status}: use -f to follow it")
                out.write(await sandbox.read_log())
                out.flush()
                return
            async for line in sandbox.logs(follow=True):
                out.write(line.encode() + b"\n")
                out.flush()

    run(body)


@sandboxes.command("cancel")
@click.argument("repository")
@click.argument("sandbox_id")
@pass_state
def sandboxes_cancel(state: State, repository: str, sandbox_id: str) -> None:
    """Stop a sandbox and discard its changes.

    \b
    Example:
      lamina sandboxes cancel acme/datasets 7c0e...
    """
    target = parse_repository(repository)

    async def body() -> None:
        async with state.client() as client:
            await AsyncSandbox(client.repository(target.repository), sandbox_id).cancel()

    run(body)
    click.echo(f"Cancelled sandbox {sandbox_id}.")


COMMANDS = [exec_, sandboxes]
