"""``lamina shell``: an interactive terminal in a sandbox, over its ``/terminal`` websocket.

The local terminal is put in raw mode for the session, so every key (Ctrl-C, Ctrl-D, arrows)
goes to the remote terminal as typed, and its output comes back as it is. The remote window
follows the local one: its size is sent at the start and again at every ``SIGWINCH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Iterator, Mapping

import anyio
import click

from lamina._async._exec import AsyncTerminal
from lamina._async.resources.repositories import AsyncRepository
from lamina._async.resources.sandboxes import SHELL_FINISH_TIMEOUT, SHELL_START_TIMEOUT
from lamina.cli.app import CONTEXT_SETTINGS, State, pass_state, run
from lamina.cli.compute import cancel_quietly, parse_env, report_outcome, sandbox_options
from lamina.cli.locations import parse_repository
from lamina.cli.output import note
from lamina.models.sandboxes import SandboxOutcome, TerminalExit

_READ_SIZE = 65536
#: What the remote terminal reads as end of input when the local stdin (not a terminal) ends.
_EOT = b"\x04"


@click.command("shell", context_settings=CONTEXT_SETTINGS)
@click.argument("repository")
@sandbox_options
@pass_state
def shell(
    state: State,
    repository: str,
    image: str | None,
    env: tuple[str, ...],
    timeout: int | None,
    mountpoint: str | None,
    path_prefix: str | None,
) -> None:
    """Open an interactive shell in a sandbox on the repository.

    The repository is mounted at /sandbox; what you change there is committed when the shell
    exits with status 0 (`exit`), and discarded otherwise (`exit 1`). Ctrl-C goes to the
    remote shell. The exit status is the shell's.

    \b
    Examples:
      lamina shell acme/datasets
      lamina shell acme/datasets --image python:3.12 -e DEBUG=1
    """
    target = parse_repository(repository)
    options = {
        "env": parse_env(env),
        "timeout": timeout,
        "mountpoint": mountpoint,
        "path_prefix": path_prefix,
    }

    async def body() -> int:
        async with state.client() as client:
            return await _interactive(client.repository(target.repository), image, options)

    code = run(body)
    click.get_current_context().exit(code if 0 <= code <= 255 else 1)


def _window() -> tuple[int, int]:
    for stream in (sys.stdout, sys.stdin):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            size = os.get_terminal_size(stream.fileno())
            return size.columns, size.lines
    size = shutil.get_terminal_size()
    return size.columns, size.lines


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[bool]:
    """The terminal at ``fd`` in raw mode for the block (restored after); yields whether it
    is a terminal at all."""
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _interactive(
    repo: AsyncRepository, image: str | None, options: Mapping[str, object]
) -> int:
    sandbox = await repo.sandboxes.create(image, mode="interactive", **options)  # type: ignore[arg-type]
    try:
        await sandbox.wait(SHELL_START_TIMEOUT, until="running")
        cols, rows = _window()
        stdin_fd = sys.stdin.fileno()
        async with sandbox.terminal(cols=cols, rows=rows) as terminal:
            with raw_mode(stdin_fd) as is_terminal:
                end = "\r\n" if is_terminal else "\n"
                sys.stderr.write(
                    f"Connected to sandbox {sandbox.id}; `exit` to leave (exit status 0 "
                    f"commits what changed under the mount).{end}"
                )
                sys.stderr.flush()
                code = await _pump(terminal, stdin_fd, is_terminal)
    except BaseException:
        await cancel_quietly(sandbox)
        raise
    note(f"[shell exited with code {code}]")
    report_outcome(SandboxOutcome.from_status(await sandbox.wait(SHELL_FINISH_TIMEOUT)))
    return code


async def _pump(terminal: AsyncTerminal, stdin_fd: int, is_terminal: bool) -> int:
    """Keys and window sizes to the terminal, its output to stdout, until its process exits;
    returns the exit code."""
    loop = asyncio.get_running_loop()
    actions: asyncio.Queue[bytes | tuple[int, int]] = asyncio.Queue()
    out = sys.stdout.buffer

    def on_input() -> None:
        try:
            data = os.read(stdin_fd, _READ_SIZE)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin_fd)
            if not is_terminal:
                actions.put_nowait(_EOT)
            return
        actions.put_nowait(data)

    async def send() -> None:
        while True:
            action = await actions.get()
            if isinstance(action, bytes):
                await terminal.send(action)
            else:
                await terminal.resize(*action)

    loop.add_reader(stdin_fd, on_input)
    loop.add_signal_handler(signal.SIGWINCH, lambda: actions.put_nowait(_window()))
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(send)
            while True:
                received = await terminal.receive()
                if isinstance(received, TerminalExit):
                    group.cancel_scope.cancel()
                    return received.exit_code
                out.write(received)
                out.flush()
    finally:
        loop.remove_reader(stdin_fd)
        loop.remove_signal_handler(signal.SIGWINCH)
    raise AssertionError("unreachable")


COMMANDS = [shell]
