"""The frames of the sandbox websockets, ``/exec`` and ``/terminal``: a pure codec.

Every frame is a binary websocket message whose first byte is its type; the rest is the payload.

``/exec`` (one command per connection, pipes, no terminal)::

    0x00 LAUNCH       client -> server   JSON {"cmd": [...], "env"?: {...}, "cwd"?: "..."}; first
    0x01 STDIN        client -> server   raw bytes
    0x02 STDIN_CLOSE  client -> server   empty: end of file on the command's stdin
    0x03 STDOUT       server -> client   raw bytes
    0x04 STDERR       server -> client   raw bytes
    0x05 EXIT         server -> client   JSON {"exit_code": N, "reason"?: "...", "error"?: "..."}

``/terminal`` (an interactive sandbox's pty)::

    0x00 stdin        client -> server   raw bytes
    0x01 output       server -> client   raw bytes, stdout and stderr merged by the tty
    0x02 resize       client -> server   JSON {"cols": N, "rows": N}
    0x03 exit         server -> client   JSON {"exited": true, "exit_code": N}

Decoding is forgiving, for forward compatibility: text frames, empty frames and frames of an
unknown type decode to ``None`` (to be ignored). An exit frame whose JSON cannot be read gives
exit code ``-1``. Output bytes are kept verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from lamina._errors import InvalidArgumentError, InvalidArgumentTypeError
from lamina.models.sandboxes import OutputEvent, TerminalExit

__all__ = [
    "EXEC_EXIT",
    "EXEC_LAUNCH",
    "EXEC_STDERR",
    "EXEC_STDIN",
    "EXEC_STDIN_CLOSE",
    "EXEC_STDOUT",
    "TERMINAL_EXIT",
    "TERMINAL_OUTPUT",
    "TERMINAL_RESIZE",
    "TERMINAL_STDIN",
    "ExecExit",
    "TerminalOutput",
    "command_argv",
    "decode_exec",
    "decode_terminal",
    "launch_frame",
    "resize_frame",
    "stdin_close_frame",
    "stdin_frame",
    "terminal_stdin_frame",
]

EXEC_LAUNCH = 0x00
EXEC_STDIN = 0x01
EXEC_STDIN_CLOSE = 0x02
EXEC_STDOUT = 0x03
EXEC_STDERR = 0x04
EXEC_EXIT = 0x05

TERMINAL_STDIN = 0x00
TERMINAL_OUTPUT = 0x01
TERMINAL_RESIZE = 0x02
TERMINAL_EXIT = 0x03


@frozen
class ExecExit:
    """The command ended: its exit code (``-1`` if the server gave none), and the server's
    ``reason`` and ``error`` when it could not run it."""

    exit_code: int
    reason: str | None = None
    error: str | None = None


@frozen
class TerminalOutput:
    """Bytes the terminal displayed (stdout and stderr merged)."""

    data: bytes


def command_argv(command: str | Sequence[str]) -> list[str]:
    """The argv for a command: a string runs through the shell (``["sh", "-c", command]``),
    a sequence of strings as-is (no shell)."""
    if isinstance(command, str):
        return ["sh", "-c", command]
    argv = list(command)
    if not argv or not all(isinstance(part, str) for part in argv):
        raise InvalidArgumentTypeError(
            f"a command is a str or a non-empty list of str, got {command!r:.60}"
        )
    return argv


def launch_frame(
    command: str | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> bytes:
    """The LAUNCH frame; ``env`` and ``cwd`` are sent only when given."""
    body: dict[str, Any] = {"cmd": command_argv(command)}
    if env is not None:
        body["env"] = dict(env)
    if cwd is not None:
        body["cwd"] = cwd
    return bytes([EXEC_LAUNCH]) + json.dumps(body, separators=(",", ":")).encode()


def stdin_frame(data: bytes) -> bytes:
    return bytes([EXEC_STDIN]) + bytes(data)


def stdin_close_frame() -> bytes:
    return bytes([EXEC_STDIN_CLOSE])


def terminal_stdin_frame(data: bytes) -> bytes:
    return bytes([TERMINAL_STDIN]) + bytes(data)


def resize_frame(cols: int, rows: int) -> bytes:
    for name, value in (("cols", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a whole number, at least 1, got {value!r}")
    body = json.dumps({"cols": cols, "rows": rows}, separators=(",", ":"))
    return bytes([TERMINAL_RESIZE]) + body.encode()


def decode_exec(message: str | bytes) -> OutputEvent | ExecExit | None:
    """A server frame of ``/exec``; ``None`` for a frame to ignore."""
    if not isinstance(message, bytes) or not message:
        return None
    kind, payload = message[0], message[1:]
    if kind == EXEC_STDOUT:
        return OutputEvent("stdout", payload)
    if kind == EXEC_STDERR:
        return OutputEvent("stderr", payload)
    if kind == EXEC_EXIT:
        body = _json_object(payload)
        return ExecExit(
            exit_code=_exit_code(body),
            reason=_optional_str(body.get("reason")),
            error=_optional_str(body.get("error")),
        )
    return None


def decode_terminal(message: str | bytes) -> TerminalOutput | TerminalExit | None:
    """A server frame of ``/terminal``; ``None`` for a frame to ignore."""
    if not isinstance(message, bytes) or not message:
        return None
    kind, payload = message[0], message[1:]
    if kind == TERMINAL_OUTPUT:
        return TerminalOutput(payload)
    if kind == TERMINAL_EXIT:
        return TerminalExit(_exit_code(_json_object(payload)))
    return None


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _exit_code(body: Mapping[str, Any]) -> int:
    code = body.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return -1


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
