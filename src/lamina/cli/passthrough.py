"""``lamina server``, ``lamina evidence`` and ``lamina mcp``: commands with their own parsers,
handed the rest of the command line as it is (the first two also run without the ``cli``
extra)."""

from __future__ import annotations

import click

from lamina.cli.evidence import run_evidence
from lamina.cli.server import run_server

_PASS = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(
    "server", context_settings=_PASS, add_help_option=False, short_help="Run the reference server."
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def server(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run the Lamina reference server (needs the server extra).

    \b
    Examples:
      lamina server --help
      lamina server --data-dir ./lamina-data --port 8710
    """
    ctx.exit(run_server(list(args)))


@click.command(
    "evidence",
    context_settings=_PASS,
    add_help_option=False,
    short_help="Verify an evidence bundle offline.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def evidence(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Verify an evidence bundle offline.

    \b
    Examples:
      lamina evidence verify pack.zip --public-key server.pem
      lamina evidence verify pack.zip --endpoint https://lamina.example.com
    """
    ctx.exit(run_evidence(list(args)))


@click.command(
    "mcp", context_settings=_PASS, add_help_option=False, short_help="Serve MCP to agents."
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def mcp(ctx: click.Context, args: tuple[str, ...]) -> None:
    """The MCP server for agents (needs the mcp extra; docs/mcp.md), with an agent key.

    \b
    Examples:
      LAMINA_API_KEY=tak-... lamina mcp
      lamina mcp --transport streamable-http --port 8000
    """
    from lamina.mcp import main as run_mcp

    ctx.exit(run_mcp(list(args)))


COMMANDS = [server, evidence, mcp]
