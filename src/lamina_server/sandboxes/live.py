"""What the server holds of a sandbox while it is active (the service's working state)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from lamina_server.sandboxes.checkouts import Checkout
from lamina_server.sandboxes.gate import Verdict
from lamina_server.sandboxes.logs import SandboxLog
from lamina_server.sandboxes.models import CREATED, STARTING, Outcome, SandboxRecord
from lamina_server.sandboxes.runners.base import Process, Sandbox
from lamina_server.storage import journal

# How much of a terminal's latest output a client that attaches is shown first.
TERMINAL_REPLAY = 16 * 1024

Sink = Callable[[bytes], Awaitable[None]]


class TerminalRelay:
    """The main command's output on its way to the terminal client attached, if any. The latest
    output is kept for the next client to attach: a shell prints its first prompt before anyone
    is there to see it, and a client that comes back sees where it left off."""

    def __init__(self) -> None:
        self._recent = bytearray()
        self._sink: Sink | None = None
        self._sending = anyio.Lock()  # the replay goes out before any later output

    @property
    def attached(self) -> bool:
        return self._sink is not None

    async def write(self, chunk: bytes) -> None:
        self._recent += chunk
        if len(self._recent) > TERMINAL_REPLAY:
            del self._recent[: len(self._recent) - TERMINAL_REPLAY]
        sink = self._sink
        if sink is not None:
            async with self._sending:
                await sink(chunk)

    async def attach(self, sink: Sink) -> None:
        """Sends ``sink`` the latest output, then everything that follows, in order."""
        async with self._sending:
            self._sink = sink
            if self._recent:
                await sink(bytes(self._recent))

    def detach(self, sink: Sink) -> None:
        if self._sink is sink:
            self._sink = None


@dataclass(eq=False)
class Live:
    """What the server holds of a sandbox while it is active."""

    record: SandboxRecord
    folder: Path
    log: SandboxLog
    env: dict[str, str] = field(default_factory=dict)
    box: Sandbox | None = None
    checkout: Checkout | None = None
    main: Process | None = None
    ready: anyio.Event = field(default_factory=anyio.Event)  # running, or ended
    stop: anyio.Event = field(default_factory=anyio.Event)  # finish or cancel was asked
    ended: anyio.Event = field(default_factory=anyio.Event)
    exited: anyio.Event = field(default_factory=anyio.Event)  # the main command exited
    ending: str | None = None
    # Where it is, fresher than its row: "initializing" is only ever kept here.
    outcome: Outcome = field(default_factory=lambda: Outcome(STARTING, CREATED))
    # Output of an interactive sandbox's terminal goes to the log and to the attached socket.
    terminal: TerminalRelay = field(default_factory=TerminalRelay)
    main_exit: int | None = None
    decisions: list[Verdict] = field(default_factory=list)  # the policy decisions it took
    end_entries: tuple[journal.Entry, ...] = ()  # the audit entry of a finish or cancel

    @property
    def id(self) -> str:
        return self.record.id
