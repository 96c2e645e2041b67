"""The /exec and /terminal frame codec."""

from __future__ import annotations

import json

import pytest

from lamina import InvalidArgumentError, InvalidArgumentTypeError, OutputEvent, TerminalExit
from lamina._frames import (
    ExecExit,
    TerminalOutput,
    command_argv,
    decode_exec,
    decode_terminal,
    launch_frame,
    resize_frame,
    stdin_close_frame,
    stdin_frame,
    terminal_stdin_frame,
)


def test_launch_frame_wraps_a_string_in_sh_and_sends_only_what_is_given() -> None:
    frame = launch_frame("ls -l")
    assert frame[0] == 0x00
    assert json.loads(frame[1:]) == {"cmd": ["sh", "-c", "ls -l"]}
    frame = launch_frame(["python", "-V"], env={"A": "1"}, cwd="/sandbox")
    assert json.loads(frame[1:]) == {"cmd": ["python", "-V"], "env": {"A": "1"}, "cwd": "/sandbox"}


@pytest.mark.parametrize("command", [[], ["ok", 3], b"ls"])
def test_a_command_is_a_string_or_a_list_of_strings(command: object) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        command_argv(command)  # type: ignore[arg-type]


def test_client_frames() -> None:
    assert stdin_frame(b"abc") == b"\x01abc"
    assert stdin_close_frame() == b"\x02"
    assert terminal_stdin_frame(b"ls\n") == b"\x00ls\n"
    frame = resize_frame(120, 40)
    assert frame[0] == 0x02 and json.loads(frame[1:]) == {"cols": 120, "rows": 40}
    with pytest.raises(InvalidArgumentError):
        resize_frame(0, 40)


def test_exec_server_frames() -> None:
    assert decode_exec(b"\x03out\r\n") == OutputEvent("stdout", b"out\r\n")
    assert decode_exec(b"\x04err") == OutputEvent("stderr", b"err")
    assert decode_exec(b'\x05{"exit_code": 2, "reason": "exit", "error": ""}') == ExecExit(
        2, reason="exit"
    )
    assert decode_exec(b'\x05{"exit_code": 127, "error": "not found"}') == ExecExit(
        127, error="not found"
    )


@pytest.mark.parametrize(
    "payload", [b"", b"not json", b"[1]", b'{"exit_code": "1"}', b'{"exit_code": true}']
)
def test_an_unreadable_exit_gives_minus_one(payload: bytes) -> None:
    assert decode_exec(b"\x05" + payload) == ExecExit(-1)
    assert decode_terminal(b"\x03" + payload) == TerminalExit(-1)


@pytest.mark.parametrize("message", ["\x03text frame", b"", b"\x09unknown", b"\x00launch"])
def test_text_empty_and_unknown_frames_are_ignored(message: str | bytes) -> None:
    assert decode_exec(message) is None


def test_terminal_server_frames() -> None:
    assert decode_terminal(b"\x01$ ") == TerminalOutput(b"$ ")
    assert decode_terminal(b'\x03{"exited": true, "exit_code": 0}') == TerminalExit(0)
    for ignored in ("\x01text", b"", b"\x07x", b"\x00stdin"):
        assert decode_terminal(ignored) is None
