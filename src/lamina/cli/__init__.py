"""The ``lamina`` command (``lamina --help``; reference: docs/cli.md).

The command tree is built on click and rich, from the ``cli`` extra
(``pip install 'lamina[cli]'``). Without them, ``lamina server`` and ``lamina evidence`` still
run (they have parsers of their own) and every other command says which extra to install.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lamina.cli.evidence import run_evidence
from lamina.cli.server import run_server

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lamina`` with ``argv`` (default: the process's arguments); returns the status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from lamina.cli.app import main as run_tree
    except ImportError as exc:
        return _without_extra(args, exc)
    return run_tree(args)


def _without_extra(args: list[str], exc: ImportError) -> int:
    if args and args[0] == "server":
        return run_server(args[1:])
    if args and args[0] == "evidence":
        return run_evidence(args[1:])
    print(
        f"lamina: this command needs the cli extra ({exc}): pip install 'lamina[cli]'\n"
        "Without it: lamina server ..., lamina evidence verify BUNDLE",
        file=sys.stderr,
    )
    return 1
