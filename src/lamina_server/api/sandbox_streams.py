"""The sandbox websockets: ``/exec`` (one command per socket, piped) and ``/terminal`` (the
interactive sandbox's terminal).

Every frame is binary, its first byte the frame's type (``wire-protocol.md`` §2.6). Output is
sent as the process produces it; a slow client slows the process down (the pipe fills), it
never makes the server buffer. Refusals before the handshake (unknown sandbox 404, still
starting 503, finished 410, wrong mode 400) are HTTP answers with the error envelope; a launch
that fails after it is an exit frame that says why.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from lamina_server.api.access import AccessDep, repository_socket
from lamina_server.api.params import ServicesDep
from lamina_server.api.sandboxes import SANDBOX, SandboxId
from lamina_server.authz import Action
from lamina_server.sandboxes.errors import SandboxElsewhere, SandboxStateConflict
from lamina_server.sandboxes.live import Live
from lamina_server.sandboxes.models import INTERACTIVE
from lamina_server.sandboxes.runners.base import Process, RunnerError
from lamina_server.sandboxes.service import Sandboxes

router = APIRouter(tags=["Sandboxes"])

# /exec frames
LAUNCH, STDIN, STDIN_CLOSE, STDOUT, STDERR, EXIT = range(6)
# /terminal frames
TERM_INPUT, TERM_OUTPUT, TERM_RESIZE, TERM_EXIT = range(4)

MAX_ENV = 256


class BadLaunch(ValueError):
    pass


def parse_launch(frame: bytes) -> tuple[list[str], dict[str, str], str | None]:
    """The command, environment and working directory of a launch frame."""
    if not frame or frame[0] != LAUNCH:
        raise BadLaunch("the first frame must be a launch frame (type 0x00)")
    try:
        launch = json.loads(frame[1:])
    except ValueError:
        raise BadLaunch("the launch frame is not JSON") from None
    if not isinstance(launch, dict):
        raise BadLaunch("the launch frame must be a JSON object")
    cmd, env, cwd = launch.get("cmd"), launch.get("env") or {}, launch.get("cwd")
    if (
        not isinstance(cmd, list)
        or not cmd
        or not all(isinstance(arg, str) and "\x00" not in arg for arg in cmd)
    ):
        raise BadLaunch("cmd: must be a non-empty list of strings")
    if (
        not isinstance(env, dict)
        or len(env) > MAX_ENV
        or not all(
            isinstance(key, str) and key and "=" not in key and "\x00" not in key + str(value)
            for key, value in env.items()
        )
        or not all(isinstance(value, str) for value in env.values())
    ):
        raise BadLaunch("env: must be an object of string variables")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/")):
        raise BadLaunch("cwd: must be an absolute path")
    return cmd, env, cwd


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(cols, rows) of a resize frame; None when it is not a sane size."""
    try:
        size = json.loads(payload)
        cols, rows = int(size["cols"]), int(size["rows"])
    except (ValueError, TypeError, KeyError):
        return None
    return (cols, rows) if 0 < cols < 10000 and 0 < rows < 10000 else None


def _json_frame(kind: int, body: dict[str, Any]) -> bytes:
    return bytes([kind]) + json.dumps(body).encode()


async def _frames(websocket: WebSocket) -> AsyncIterator[bytes]:
    """The client's binary frames until it goes away (text frames are ignored)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data:
            yield data


@router.websocket(f"{SANDBOX}/exec", dependencies=[repository_socket(Action.EXEC_SANDBOX)])
async def exec_socket(
    websocket: WebSocket, sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> None:
    try:
        live = await services.sandboxes.running(access.repo.id, sandbox_id)
    except SandboxElsewhere as elsewhere:
        await services.forwarder.socket(websocket, elsewhere)
        return
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await _exec(websocket, services.sandboxes, live)


async def _exec(websocket: WebSocket, sandboxes: Sandboxes, live: Live) -> None:
    frames = _frames(websocket).__aiter__()
    try:
        first = await frames.__anext__()
        argv, env, cwd = parse_launch(first)
    except StopAsyncIteration:
        return
    except BadLaunch as exc:
        await websocket.send_bytes(
            _json_frame(EXIT, {"exit_code": -1, "reason": "bad_launch", "error": str(exc)})
        )
        await websocket.close()
        return
    try:
        process = await sandboxes.spawn(live, argv, env=env, cwd=cwd)
    except RunnerError as exc:
        await websocket.send_bytes(
            _json_frame(EXIT, {"exit_code": 127, "reason": "launch_failed", "error": str(exc)})
        )
        await websocket.close()
        return
    sending = anyio.Lock()

    async def send(kind: int, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            async with sending:
                await websocket.send_bytes(bytes([kind]) + chunk)

    async def feed() -> None:
        async for frame in frames:
            try:
                if frame[0] == STDIN:
                    await process.write_stdin(frame[1:])
                elif frame[0] == STDIN_CLOSE:
                    await process.close_stdin()
            except RunnerError:
                pass  # the process closed its stdin: what is left of the input has no reader
        process.kill()  # the client went away: so does its command

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(feed)
            async with anyio.create_task_group() as output:
                output.start_soon(send, STDOUT, process.read_stdout())
                output.start_soon(send, STDERR, process.read_stderr())
            code = await process.wait()
            exit_body: dict[str, Any] = {"exit_code": code}
            if live.ended.is_set() or live.ending is not None:
                exit_body.update(reason="sandbox_ended", error="the sandbox ended")
            async with sending:
                await websocket.send_bytes(_json_frame(EXIT, exit_body))
            tasks.cancel_scope.cancel()
    finally:
        process.kill()
    await websocket.close()


@router.websocket(f"{SANDBOX}/terminal", dependencies=[repository_socket(Action.EXEC_SANDBOX)])
async def terminal_socket(
    websocket: WebSocket, sandbox_id: SandboxId, services: ServicesDep, access: AccessDep
) -> None:
    try:
        live = await services.sandboxes.running(access.repo.id, sandbox_id, mode=INTERACTIVE)
    except SandboxElsewhere as elsewhere:
        await services.forwarder.socket(websocket, elsewhere)
        return
    if live.main is None or live.terminal.attached:
        raise SandboxStateConflict(
            f"the terminal of sandbox {sandbox_id!r} is attached to another client"
        )
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await _terminal(websocket, live, live.main)


async def _terminal(websocket: WebSocket, live: Live, main: Process) -> None:
    async def sink(chunk: bytes) -> None:
        try:
            await websocket.send_bytes(bytes([TERM_OUTPUT]) + chunk)
        except (WebSocketDisconnect, RuntimeError, OSError):
            live.terminal.detach(sink)  # the client went; the log still gets the output

    await live.terminal.attach(sink)
    try:
        async with anyio.create_task_group() as tasks:

            async def feed() -> None:
                async for frame in _frames(websocket):
                    if frame[0] == TERM_INPUT:
                        try:
                            await main.write_stdin(frame[1:])
                        except RunnerError:
                            return
                    elif frame[0] == TERM_RESIZE:
                        size = parse_resize(frame[1:])
                        if size is not None:
                            main.resize(*size)
                tasks.cancel_scope.cancel()  # the client went away; the sandbox goes on

            tasks.start_soon(feed)
            await live.exited.wait()
            await websocket.send_bytes(
                _json_frame(TERM_EXIT, {"exited": True, "exit_code": live.main_exit})
            )
            tasks.cancel_scope.cancel()
    finally:
        live.terminal.detach(sink)
    await websocket.close()
