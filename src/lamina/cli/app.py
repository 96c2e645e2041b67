"""The ``lamina`` command tree (click), its global options and its error handling.

A command's failure is one line on stderr and exit status 1: a typed SDK error
(:class:`~lamina.LaminaError`) with its HTTP status and request id, a local file error, or a
path that is not one. ``--debug`` shows the traceback instead. Usage errors exit 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import anyio
import attrs
import click

from lamina._async._client import AsyncClient
from lamina._errors import APIError, ConfigurationError, LaminaError
from lamina.cli.locations import LocationError
from lamina.cli.output import one_line

T = TypeVar("T")

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@attrs.define
class State:
    """The global options, handed to every command (``ctx.obj``)."""

    debug: bool = False
    endpoint_url: str | None = None
    api_key: str | None = None

    def client(self, **options: Any) -> AsyncClient:
        """A client with the global options (else the environment, then the config file)."""
        return AsyncClient(api_key=self.api_key, endpoint_url=self.endpoint_url, **options)


pass_state = click.make_pass_decorator(State, ensure=True)


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async command body to its end on a fresh event loop."""
    return anyio.run(function, *args)


def describe_error(exc: BaseException) -> str:
    """The one line a failure prints (without the ``Error:`` in front)."""
    if isinstance(exc, APIError):
        tags = [f"HTTP {exc.status_code}"]
        if exc.code:
            tags.append(exc.code)
        if exc.request_id:
            tags.append(f"request id {exc.request_id}")
        return f"{one_line(exc.message)} ({', '.join(tags)})"
    if isinstance(exc, ConfigurationError):
        return f"{one_line(str(exc))} (log in with: lamina auth login)"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return one_line(str(exc)) or type(exc).__name__


def fail(message: str) -> NoReturn:
    """Stop the command with ``message`` as its one-line error (exit status 1)."""
    raise click.ClickException(message)


class LaminaGroup(click.Group):
    """The root group: turns the SDK's and the system's errors into one line and status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LaminaError, LocationError, OSError) as exc:
            if isinstance(exc, BrokenPipeError):  # the reader went away (| head): stop quietly
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
                ctx.exit(1)
            state = ctx.find_object(State)
            if state is not None and state.debug:
                raise
            click.secho(f"Error: {describe_error(exc)}", err=True, fg="red")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=LaminaGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option(
    "--endpoint-url",
    metavar="URL",
    help="The server (default: $LAMINA_ENDPOINT_URL, then the config file).",
)
@click.option(
    "--api-key",
    metavar="KEY",
    help="The API key (default: $LAMINA_API_KEY, then the config file).",
)
@click.version_option(package_name="lamina", prog_name="lamina")
@click.pass_context
def cli(ctx: click.Context, debug: bool, endpoint_url: str | None, api_key: str | None) -> None:
    """Lamina: versioned object storage with sessions, sandboxes and governance.

    Paths in a repository are written org/repo[@commit]/path (a trailing / is a folder);
    local paths with a / in them start with ./ or /.

    \b
    Examples:
      lamina auth login
      lamina ls acme/datasets/raw/ -l
      lamina cp -r ./raw acme/datasets/raw/ -m "add raw data"
      lamina exec acme/datasets -- python /sandbox/clean.py
      lamina shell acme/datasets

    \b
    Shell completion (bash; zsh: zsh_source, fish: fish_source), in your shell's rc file:
      eval "$(_LAMINA_COMPLETE=bash_source lamina)"

    Reference: docs/cli.md.
    """
    ctx.obj = State(debug=debug, endpoint_url=endpoint_url, api_key=api_key)


def _register() -> None:
    from lamina.cli import (
        admin,
        auth,
        compute,
        data,
        governance,
        passthrough,
        sessions,
        shell,
        transfer,
    )

    for module in (auth, data, transfer, sessions, compute, shell, admin, governance, passthrough):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(args: list[str]) -> int:
    """Run the command line ``args``; returns the exit status."""
    try:
        result = cli.main(args=args, prog_name="lamina", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    return result if isinstance(result, int) else 0
