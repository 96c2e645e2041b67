"""Lamina's MCP server: Lamina's repositories, sessions, sandboxes and history as tools for
agents, on the official ``mcp`` SDK (``pip install 'lamina[mcp]'``).

Run it with ``python -m lamina.mcp`` (or ``lamina mcp``): stdio by default, or
``--transport streamable-http --host 127.0.0.1 --port 8000`` (served at ``/mcp``). It acts as
the agent whose key is in ``LAMINA_API_KEY`` (an agent key: ``tak-...``) on the server at
``LAMINA_ENDPOINT_URL``. See ``docs/mcp.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

try:
    from lamina.mcp.server import TOOLS, build_server
except ModuleNotFoundError as exc:  # the extra is not installed
    if exc.name != "mcp" and not (exc.name or "").startswith("mcp."):
        raise
    raise ModuleNotFoundError(
        f"lamina.mcp needs the mcp package ({exc}): pip install 'lamina[mcp]'", name=exc.name
    ) from exc

__all__ = ["TOOLS", "build_server", "main"]

TRANSPORTS = ("stdio", "streamable-http")


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="lamina mcp",
        description=(
            "Serve Lamina to agents over MCP, as the agent whose key is in LAMINA_API_KEY, "
            "on the server at LAMINA_ENDPOINT_URL."
        ),
    )
    command.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="stdio",
        help="stdio (the default: an MCP client starts this command) or streamable-http",
    )
    command.add_argument(
        "--host", default="127.0.0.1", help="streamable-http: address to listen on"
    )
    command.add_argument(
        "--port", type=int, default=8000, help="streamable-http: port to listen on (8000)"
    )
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the MCP server until its client disconnects (stdio) or it is interrupted."""
    options = parser().parse_args(argv)
    server = build_server()
    if options.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=options.host, port=options.port)
    return 0
