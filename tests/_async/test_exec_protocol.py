"""The sandbox websockets' client side against a scripted server (tests/conftest.py):
live output, stdin, buffering, terminals, and error mapping. The real server's commands are
covered in test_sandboxes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lamina import (
    PIPE,
    AsyncClient,
    AsyncSandbox,
    AuthenticationError,
    CommandError,
    ForbiddenError,
    OutputEvent,
    SandboxError,
    TerminalExit,
    TransportError,
)
from tests.conftest import FakeSandboxSockets

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake_client(fake_sandbox_sockets: FakeSandboxSockets) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        api_key=FakeSandboxSockets.API_KEY, endpoint_url=fake_sandbox_sockets.endpoint_url
    ) as client:
        yield client


@pytest.fixture
def sandbox(fake_client: AsyncClient) -> AsyncSandbox:
    return AsyncSandbox(fake_client.repository("o/r"), "sbx")


async def test_first_output_arrives_before_stdin_is_written(sandbox: AsyncSandbox) -> None:
    async with sandbox.process(["prompt"], stdin=PIPE) as proc:
        stdout = proc.stdout
        assert await stdout.__anext__() == b"ready\n"
        await proc.stdin.write(b"hello ")
        await proc.stdin.write("wörld")  # text is sent as UTF-8
        await proc.stdin.close()
        assert await stdout.read() == "HELLO WöRLD".encode()
        assert await proc.stderr.read() == b"done\n"
        assert await proc.wait() == 3
        assert proc.exit_code == 3


async def test_events_come_in_production_order_and_junk_frames_are_ignored(
    sandbox: AsyncSandbox,
) -> None:
    async with sandbox.process(["interleave"], stdin=None) as proc:
        events = [event async for event in proc]
    assert events == [
        OutputEvent("stdout", b"a"),
        OutputEvent("stderr", b"b"),
        OutputEvent("stdout", b"c"),
    ]


async def test_reading_one_stream_keeps_the_other_bounded(sandbox: AsyncSandbox) -> None:
    async with sandbox.process(["burst", "100", "100"], stdin=None, max_buffer=1000) as proc:
        assert await proc.stdout.read() == b"o" * 10_000
        assert await proc.stderr.read() == b"e" * 1000  # the newest 1000 bytes
        assert proc.stderr.dropped == 9000
        assert proc.stdout.dropped == 0


async def test_wait_keeps_unread_output_within_the_bound(sandbox: AsyncSandbox) -> None:
    async with sandbox.process(["burst", "10", "100"], stdin=None, max_buffer=250) as proc:
        assert await proc.wait() == 0
        assert await proc.stdout.read() == b"o" * 250
        assert proc.stdout.dropped == 750


async def test_exec_collects_the_output_and_sends_the_launch_body(sandbox: AsyncSandbox) -> None:
    result = await sandbox.exec(["launch"], env={"A": "1"}, cwd="/sandbox/x")
    assert result.exit_code == 0
    assert result.stdout.text() == '{"cmd": ["launch"], "env": {"A": "1"}, "cwd": "/sandbox/x"}'
    result = await sandbox.exec(["prompt"], stdin=b"abc")
    assert (result.stdout.text(), result.stderr.text(), result.exit_code) == (
        "ready\nABC",
        "done\n",
        3,
    )
    with pytest.raises(CommandError) as caught:
        await sandbox.exec(["prompt"], stdin="x", check=True)
    assert caught.value.result.exit_code == 3
    assert caught.value.command == "prompt"


async def test_a_connection_closed_before_the_exit_is_a_sandbox_error(
    sandbox: AsyncSandbox,
) -> None:
    with pytest.raises(SandboxError, match="before the command exited"):
        await sandbox.exec(["vanish"])


async def test_refused_handshakes_are_typed_api_errors(
    fake_client: AsyncClient, fake_sandbox_sockets: FakeSandboxSockets
) -> None:
    refused = AsyncSandbox(fake_client.repository("o/refused"), "sbx")
    with pytest.raises(ForbiddenError) as caught:
        await refused.exec("true")
    assert (caught.value.code, caught.value.request_id) == ("forbidden", "rq-1")
    assert caught.value.message == "forbidden here"
    async with AsyncClient(
        api_key="tuk-wrong", endpoint_url=fake_sandbox_sockets.endpoint_url
    ) as other:
        with pytest.raises(AuthenticationError):
            await AsyncSandbox(other.repository("o/r"), "sbx").exec("true")


async def test_an_unreachable_endpoint_is_a_transport_error() -> None:
    async with AsyncClient(api_key="tuk-x", endpoint_url="http://127.0.0.1:9") as client:
        with pytest.raises(TransportError):
            await AsyncSandbox(client.repository("o/r"), "sbx").exec("true")


async def test_terminal_round_trip(
    sandbox: AsyncSandbox, fake_sandbox_sockets: FakeSandboxSockets
) -> None:
    async with sandbox.terminal(cols=100, rows=30) as term:
        assert await term.receive() == b"$ "
        await term.send("tty\n")
        assert await term.receive() == b"tty\n"
        await term.resize(80, 24)
        await term.send(b"exit\n")
        assert await term.receive() == TerminalExit(0)
        assert await term.receive() == TerminalExit(0)
        assert term.exit_code == 0
    assert fake_sandbox_sockets.resizes[-2:] == [
        {"cols": 100, "rows": 30},
        {"cols": 80, "rows": 24},
    ]
