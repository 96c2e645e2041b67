"""Serving the app: the listening socket, and uvicorn's httptools protocol with connection limits.

:func:`listen` binds the socket before anything else happens, so a server that cannot listen
has created nothing; :func:`run` serves the app on it under uvicorn, with the server's own log
(``lamina_server``) printed like uvicorn's.

:class:`LimitedHttpProtocol` is uvicorn's httptools protocol (which caps neither the size of a
request's headers nor the time they take) with the limits of a :class:`ServerConfig`:

- the request line and headers may take ``max_header_bytes``, and the request is answered 431
  when they take more; the parser is not fed more of them (except, for a request pipelined
  behind another, what arrived in the same read as the end of the previous one);
- they must arrive within ``header_timeout`` seconds of the connection opening (or of the
  request's first byte, on a kept-alive connection): past it, the connection is closed (after
  a 408 when part of a request had arrived);
- a connection idle after a response is closed after ``keep_alive_timeout`` seconds (uvicorn's
  ``timeout_keep_alive``);
- a connection opened while ``max_connections`` are open has its request answered 503, and is
  closed.

A refused request gets the API's error envelope. The connection then stops reading requests:
what the client still sends is discarded for up to :data:`LINGER_SECONDS`, so that it can read
the answer rather than have its connection reset, and then it is closed.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import json
import logging
import socket
from collections.abc import Sequence
from typing import Any, ClassVar

import uvicorn
from uvicorn.config import LOGGING_CONFIG, Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from lamina_server import splicing
from lamina_server.api.errors import envelope, error_headers
from lamina_server.api.request_ids import new_request_id
from lamina_server.config import ServerConfig

logger = logging.getLogger("uvicorn.error")

LINGER_SECONDS = 2.0
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


def run(
    app: Any,
    config: ServerConfig,
    sock: socket.socket,
    *,
    log_level: str,
    also: Sequence[socket.socket] = (),
) -> int:
    """Serves ``app`` on ``sock`` (from :func:`listen`), and on the sockets ``also`` (the S3
    gateway's port), until interrupted; the exit status."""
    server = _Server(
        Config(
            app,
            host=config.host,
            port=sock.getsockname()[1],
            http=limited_protocol(config),
            access_log=config.access_log,
            log_level=log_level,
            log_config=_log_config(log_level),
            server_header=False,
            backlog=config.backlog,
            timeout_keep_alive=config.keep_alive_timeout,
        )
    )
    try:
        server.run(sockets=[sock, *also])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        for other in also:
            other.close()
    return 0 if server.started else STARTUP_FAILURE


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging, with the server's own log (``lamina_server``: unexpected errors,
    clients gone mid-request) on the same handler, at the same level."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["lamina_server"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return config


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens (it does not when handed its socket), and
    enforcing its connections' header deadlines on each tick of its main loop (10 a second)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host
            where = f"[{host}]" if ":" in host else host
            logger.info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", where, self.config.port
            )

    async def on_tick(self, counter: int) -> bool:
        now = asyncio.get_running_loop().time()
        for connection in tuple(self.server_state.connections):
            if isinstance(connection, LimitedHttpProtocol):
                connection.check_deadline(now)
        return await super().on_tick(counter)


# The base class's methods, called directly: cheaper than super() on the per-request paths.
_base_data_received = HttpToolsProtocol.data_received
_base_on_headers_complete = HttpToolsProtocol.on_headers_complete
_base_on_message_complete = HttpToolsProtocol.on_message_complete


def limited_protocol(config: ServerConfig) -> type[LimitedHttpProtocol]:
    """:class:`LimitedHttpProtocol` with the limits of ``config``."""
    return type(
        "LimitedHttpProtocol",
        (LimitedHttpProtocol,),
        {
            "max_header_bytes": config.max_header_bytes,
            "header_timeout": config.header_timeout,
            "max_connections": config.max_connections,
        },
    )


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a cap on the size of a request's line and headers,
    a deadline for them, and a cap on open connections (see the module's docstring).

    A connection only records its deadline (no timer per request): the server calls
    :meth:`check_deadline` periodically.
    """

    max_header_bytes: ClassVar[int] = ServerConfig.max_header_bytes
    header_timeout: ClassVar[int] = ServerConfig.header_timeout
    max_connections: ClassVar[int] = ServerConfig.max_connections

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_body = False  # between a request's headers and the end of its body
        self._head_bytes = 0  # bytes received of the request line and headers being read
        self._heads = 0  # requests whose headers were read
        self._head_deadline: float | None = None  # (loop time) for the headers being read
        self._refused = False
        self._can_relay = False  # whether answers may relay a body (lamina_server.splicing)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._can_relay = splicing.can_relay(transport)
        if len(self.connections) > self.max_connections:
            logger.warning("Refused a connection: %d are open.", self.max_connections)
            self.app = _server_busy
        self._head_deadline = self.loop.time() + self.header_timeout

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            _base_data_received(self, data)
            return
        if self._refused:
            return
        if self._head_deadline is None:
            self._head_deadline = self.loop.time() + self.header_timeout
        room = self.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            _base_data_received(self, data)
            return
        # The parser sees only what fits: either the headers end within it (and the rest, the
        # body or the next request, is received as usual), or they are too large.
        heads = self._heads
        self._head_bytes = self.max_header_bytes
        _base_data_received(self, data[:room])
        if self.transport.is_closing():
            return
        if self._heads != heads:
            self.data_received(data[room:])
        else:
            logger.warning(
                "Refused a request whose headers exceed %d bytes.", self.max_header_bytes
            )
            self._refuse(
                431,
                "request_header_too_large",
                f"the request line and headers exceed {self.max_header_bytes} bytes",
            )

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._in_body = True
        self._head_bytes = 0
        self._head_deadline = None
        cycle = self.cycle
        _base_on_headers_complete(self)
        if self._can_relay and self.cycle is not cycle and self.scope["method"] == "GET":
            splicing.offer(self.cycle, self.transport)  # only a GET's answer relays a body

    def on_message_complete(self) -> None:
        self._in_body = False
        _base_on_message_complete(self)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse (e.g. an empty ``Transfer-Encoding``): the error
        envelope, as for every refusal, instead of uvicorn's plain-text 400."""
        if self._refused:
            return
        self._in_body = False  # read nothing more of this connection
        self._refuse(400, "bad_request", "the request is not valid HTTP/1.1")

    def check_deadline(self, now: float) -> None:
        """Past the headers' deadline: a 408 if part of a request arrived, and the connection
        is closed (unless a response is still being sent on it: then it gets more time)."""
        deadline = self._head_deadline
        if deadline is None or now < deadline:
            return
        self._head_deadline = None
        if self.transport.is_closing() or self._in_body or self._refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is arriving while the previous response is being sent.
            self._head_deadline = now + self.header_timeout
        elif self._head_bytes:
            logger.info("Refused a request whose headers took over %ds.", self.header_timeout)
            self._refuse(
                408,
                "request_timeout",
                f"the request line and headers did not arrive within {self.header_timeout}s",
            )
        else:
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answers ``status`` with the error envelope, reads no further request, and closes
        the connection once the client has closed its side or after the linger time."""
        self._refused = True
        body, headers = _envelope(code, message)
        content = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            content += [name, b": ", value, b"\r\n"]
        content += [b"\r\n", body]
        self.transport.write(b"".join(content))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _envelope(code: str, message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The error envelope of a request the app never saw, and its headers."""
    request_id = new_request_id()
    body = json.dumps(envelope(code, message, request_id)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode("ascii")),
        *(
            (name.lower().encode("ascii"), value.encode("latin-1"))
            for name, value in error_headers(code, message).items()
        ),
    ]
    return body, headers


async def _server_busy(scope: Any, receive: Any, send: Any) -> None:
    """The app of a connection past the limit: 503, and the connection is closed."""
    body, headers = _envelope(
        "server_busy", "the server has too many open connections; try again shortly"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [*headers, (b"retry-after", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": body})
