"""The ``lamina`` command.

Subcommands:
    server    run the reference server (needs the ``server`` extra); ``lamina server --help``
    evidence  verify evidence bundles offline: ``lamina evidence verify BUNDLE``
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from lamina.cli.evidence import run_evidence
from lamina.cli.server import run_server

__all__ = ["main"]

_COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "server": (run_server, "run the Lamina reference server"),
    "evidence": (run_evidence, "verify an evidence bundle offline (evidence verify BUNDLE)"),
}


def _usage() -> str:
    lines = ["usage: lamina <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    command = _COMMANDS.get(args[0])
    if command is None:
        print(f"lamina: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return command[0](args[1:])
