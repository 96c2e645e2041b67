"""``lamina server``: the reference server, imported only when the command runs."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def run_server(argv: list[str]) -> int:
    try:
        module = importlib.import_module("lamina_server.cli")
    except ImportError as exc:
        print(
            f"lamina server: the reference server is not installed ({exc}); "
            "install it with: pip install 'lamina[server]'",
            file=sys.stderr,
        )
        return 1
    server_main: Callable[..., int] = module.main
    return server_main(argv, prog="lamina server")
