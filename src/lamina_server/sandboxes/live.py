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
    terminal_sink: Callable[[bytes], Awaitable[None]] | None = None
    main_exit: int | None = None
    decisions: list[Verdict] = field(default_factory=list)  # the policy decisions it took
    end_entries: tuple[journal.Entry, ...] = ()  # the audit entry of a finish or cancel

    @property
    def id(self) -> str:
        return self.record.id
