"""Serving the app: the listening socket, bound before anything else happens.

:func:`listen` binds the socket before the app starts, so a server that cannot listen has
created nothing; :func:`run` serves the app on it under uvicorn.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.config import Config

from lamina_server.config import ServerConfig

logger = logging.getLogger("uvicorn.error")

STARTUP_FAILURE = 3  # uvicorn's exit status when the app's startup fails


class CannotListen(Exception):
    """The socket could not be bound; the message says why, in one line."""


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (as uvicorn would bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = exc.strerror or str(exc)
        hint = ""
        if isinstance(exc, socket.gaierror):
            hint = " (check --host)"
        elif exc.errno == errno.EADDRINUSE:
            hint = " (is another server running there? choose another --port)"
        raise CannotListen(f"cannot listen on {where}: {reason}{hint}") from None
    return sock


def run(app: Any, config: ServerConfig, sock: socket.socket, *, log_level: str) -> int:
    """Serves ``app`` on ``sock`` (from :func:`listen`) until interrupted; the exit status."""
    server = _Server(
        Config(
            app,
            host=config.host,
            port=sock.getsockname()[1],
            access_log=config.access_log,
            log_level=log_level,
            server_header=False,
            backlog=config.backlog,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else STARTUP_FAILURE


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens (it does not when handed its socket)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host
            where = f"[{host}]" if ":" in host else host
            logger.info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", where, self.config.port
            )
