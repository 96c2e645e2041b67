"""Live sandbox I/O over websockets: processes (``/exec``) and terminals (``/terminal``).

One websocket per command. Output is read from the socket only when the caller asks for it, so
a caller that stops reading stops the socket, and flow control reaches the command (bounded
memory whatever the output size). Both output streams share the one socket, so reading one
stream can meet the other's data:

- iterating the process (``proc``) gives every chunk of both streams in production order and
  buffers nothing;
- iterating one stream (``proc.stdout`` or ``proc.stderr``) keeps the other stream's chunks met
  on the way, at most ``max_buffer`` bytes per stream; past that the oldest are dropped and
  counted in ``proc.stderr.dropped`` (``proc.stdout.dropped``). Reading one stream therefore
  never deadlocks on the other; read the process itself (or both streams concurrently) to
  lose nothing;
- ``wait()`` reads to the end, keeping the unread output under the same bound.

A consumer that stops reading a busy stream for long may see the connection's keepalive end
it (a ``TransportError``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, WebSocketException

from lamina._concurrency import AsyncLimiter
from lamina._errors import InvalidArgumentError, InvalidArgumentTypeError, SandboxError
from lamina._frames import (
    ExecExit,
    TerminalOutput,
    decode_exec,
    decode_terminal,
    resize_frame,
    stdin_close_frame,
    stdin_frame,
    terminal_stdin_frame,
)
from lamina._websocket import MAX_MESSAGE_SIZE, STDIN_CHUNK_SIZE, closed_error, handshake_error
from lamina.models.sandboxes import OutputEvent, TerminalExit

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

__all__ = ["AsyncProcess", "AsyncProcessOutput", "AsyncProcessStdin", "AsyncTerminal"]

#: Bytes of one output stream kept while the other stream is being read.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024

Stream = Literal["stdout", "stderr"]


async def open_websocket(client: AsyncClient, path: str) -> ClientConnection:
    """A websocket to ``path`` on the client's endpoint, authenticated with its API key."""
    url, headers, open_timeout = client._websocket_target(path)
    try:
        return await connect(
            url,
            additional_headers=headers,
            user_agent_header=None,
            open_timeout=open_timeout,
            max_size=MAX_MESSAGE_SIZE,
            compression=None,
        )
    except (WebSocketException, OSError, TimeoutError) as exc:
        raise handshake_error(exc, url) from exc


async def send(connection: ClientConnection, frame: bytes, what: str) -> None:
    try:
        await connection.send(frame)
    except ConnectionClosed as exc:
        raise closed_error(exc, what) from exc


def as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentTypeError(f"expected bytes or str, got {type(data).__name__}")


class AsyncProcessStdin:
    """The stdin of a running command: ``write()`` bytes, then ``close()`` (end of file)."""

    def __init__(self, process: AsyncProcess) -> None:
        self._process = process
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(closed={self._closed})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def write(self, data: bytes | str) -> None:
        """Send ``data`` (a str is sent as UTF-8) to the command's stdin."""
        if self._closed:
            raise SandboxError("the command's stdin is closed")
        payload = as_bytes(data)
        for start in range(0, len(payload), STDIN_CHUNK_SIZE):
            chunk = payload[start : start + STDIN_CHUNK_SIZE]
            await send(self._process._connection, stdin_frame(chunk), "the stdin was written")

    async def close(self) -> None:
        """End of file on the command's stdin (idempotent; nothing to do once it exited)."""
        if self._closed:
            return
        self._closed = True
        if self._process.exit_code is None:
            try:
                await self._process._connection.send(stdin_close_frame())
            except ConnectionClosedOK:
                # The command exited and the sandbox closed the connection cleanly before its
                # exit was read: an end of file has no reader left. The exit is still read.
                return
            except ConnectionClosed as exc:
                raise closed_error(exc, "the stdin was closed") from exc


class AsyncProcessOutput:
    """One output stream of a running command, iterated for its chunks of bytes.

    ``read()`` reads the rest of it at once. ``dropped`` counts the bytes lost while the
    other stream was being read and this one's buffer was full.
    """

    def __init__(self, process: AsyncProcess, name: Stream) -> None:
        self._process = process
        self.name: Stream = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"

    @property
    def dropped(self) -> int:
        return self._process._dropped[self.name]

    def __aiter__(self) -> AsyncProcessOutput:
        return self

    async def __anext__(self) -> bytes:
        event = await self._process._next(self.name)
        if event is None:
            raise StopAsyncIteration
        return event.data

    async def read(self) -> bytes:
        """The rest of the stream, up to the command's exit."""
        return b"".join([chunk async for chunk in self])


class AsyncProcess:
    """A command running in a sandbox, with live output.

    ``stdout`` and ``stderr`` are the output streams, ``stdin`` the input; iterating the
    process gives :class:`~lamina.OutputEvent` items (stream and bytes) in production order;
    ``wait()`` returns the exit code. See the module's notes on buffering.
    """

    def __init__(
        self, connection: ClientConnection, command: object, max_buffer: int = DEFAULT_MAX_BUFFER
    ) -> None:
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise InvalidArgumentError(f"max_buffer must be at least 1 byte, got {max_buffer!r}")
        self._connection = connection
        self.command = command
        self._max_buffer = max_buffer
        self._lock = AsyncLimiter(1)
        self._queues: dict[Stream, deque[tuple[int, bytes]]] = {
            "stdout": deque(),
            "stderr": deque(),
        }
        self._sizes: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._dropped: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._sequence = 0
        self._exit: ExecExit | None = None
        self.stdin = AsyncProcessStdin(self)
        self.stdout = AsyncProcessOutput(self, "stdout")
        self.stderr = AsyncProcessOutput(self, "stderr")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.command!r}, exit_code={self.exit_code})"

    @property
    def exit_code(self) -> int | None:
        """The exit code once the command ended (``-1`` if the server gave none), else None."""
        return None if self._exit is None else self._exit.exit_code

    @property
    def exit_reason(self) -> str | None:
        """The server's reason when the command could not run or was stopped."""
        return None if self._exit is None else self._exit.reason

    @property
    def exit_error(self) -> str | None:
        """The server's error message when the command could not run."""
        return None if self._exit is None else self._exit.error

    def __aiter__(self) -> AsyncProcess:
        return self

    async def __anext__(self) -> OutputEvent:
        event = await self._next(None)
        if event is None:
            raise StopAsyncIteration
        return event

    async def wait(self) -> int:
        """Read to the command's exit and return its exit code (unread output stays
        readable, up to ``max_buffer`` bytes per stream)."""
        while True:
            if self._exit is not None:
                return self._exit.exit_code
            async with self._lock:
                if self._exit is None:
                    await self._receive()

    async def _next(self, stream: Stream | None) -> OutputEvent | None:
        """The next chunk of ``stream`` (of either stream for ``None``); None at the end."""
        while True:
            async with self._lock:
                event = self._pop(stream)
                if event is not None:
                    return event
                if self._exit is not None:
                    return None
                await self._receive()

    def _pop(self, stream: Stream | None) -> OutputEvent | None:
        if stream is None:
            heads = [(queue[0][0], name) for name, queue in self._queues.items() if queue]
            if not heads:
                return None
            stream = min(heads)[1]
        queue = self._queues[stream]
        if not queue:
            return None
        _, data = queue.popleft()
        self._sizes[stream] -= len(data)
        return OutputEvent(stream, data)

    async def _receive(self) -> None:
        """Read one frame; output goes to its stream's buffer."""
        try:
            message = await self._connection.recv()
        except ConnectionClosed as exc:
            raise closed_error(exc, "the command exited") from exc
        frame = decode_exec(message)
        if isinstance(frame, ExecExit):
            self._exit = frame
        elif frame is not None and frame.data:
            self._push(frame)

    def _push(self, event: OutputEvent) -> None:
        stream, data = event.stream, event.data
        queue = self._queues[stream]
        queue.append((self._sequence, data))
        self._sequence += 1
        self._sizes[stream] += len(data)
        while self._sizes[stream] > self._max_buffer:
            excess = self._sizes[stream] - self._max_buffer
            sequence, oldest = queue[0]
            if len(oldest) <= excess:
                queue.popleft()
                dropped = len(oldest)
            else:  # keep the newest bytes of the oldest chunk
                queue[0] = (sequence, oldest[excess:])
                dropped = excess
            self._sizes[stream] -= dropped
            self._dropped[stream] += dropped


class AsyncTerminal:
    """The terminal of an interactive sandbox: ``send()`` keystrokes, ``receive()`` output
    (bytes, with stdout and stderr merged by the tty) until a :class:`~lamina.TerminalExit`,
    ``resize()`` the window."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._exit: TerminalExit | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(exit_code={self.exit_code})"

    @property
    def exit_code(self) -> int | None:
        """The exit code of the terminal's process once it ended, else None."""
        return None if self._exit is None else self._exit.exit_code

    async def send(self, data: bytes | str) -> None:
        """Type ``data`` (a str is sent as UTF-8) into the terminal."""
        payload = as_bytes(data)
        for start in range(0, len(payload), STDIN_CHUNK_SIZE):
            chunk = payload[start : start + STDIN_CHUNK_SIZE]
            await send(self._connection, terminal_stdin_frame(chunk), "the input was sent")

    async def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size in columns and rows."""
        await send(self._connection, resize_frame(cols, rows), "the terminal was resized")

    async def receive(self) -> bytes | TerminalExit:
        """The next output, or the :class:`~lamina.TerminalExit` once the process ended
        (again at every later call)."""
        while self._exit is None:
            try:
                message = await self._connection.recv()
            except ConnectionClosed as exc:
                raise closed_error(exc, "the terminal's process exited") from exc
            frame = decode_terminal(message)
            if isinstance(frame, TerminalOutput):
                if frame.data:
                    return frame.data
            elif frame is not None:
                self._exit = frame
        return self._exit
