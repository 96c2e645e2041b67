"""Sandboxes and sandbox triggers: records, statuses, outcomes and command results.

Pure: the sandbox status machine's predicates, the polling schedule of a wait, and
:class:`OutputStream`, the captured output of a command.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from attrs import field, frozen

from lamina._errors import InvalidArgumentError

__all__ = [
    "ACTIVE_STATUSES",
    "PIPE",
    "TERMINAL_STATUSES",
    "OutputEvent",
    "OutputStream",
    "RunAs",
    "RunResult",
    "SandboxData",
    "SandboxOutcome",
    "SandboxStatus",
    "SandboxTriggerCondition",
    "SandboxTriggerConfig",
    "SandboxTriggerData",
    "SandboxTriggerRun",
    "TerminalExit",
    "poll_delays",
]

#: Statuses of a sandbox still at work (``starting``: being prepared; ``running``: ready).
ACTIVE_STATUSES = frozenset({"starting", "running"})
#: Statuses a sandbox never leaves.
TERMINAL_STATUSES = frozenset({"done", "errored", "failed", "cancelled"})


class _Pipe:
    """Type of :data:`PIPE`."""

    _instance: _Pipe | None = None

    def __new__(cls) -> _Pipe:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PIPE"

    def __reduce__(self) -> str:
        return "PIPE"


#: ``process(cmd, stdin=PIPE)``: the caller writes the command's stdin (``proc.stdin``).
PIPE = _Pipe()


def poll_delays(
    first: float = 0.005, quick: float = 0.1, factor: float = 2.0, cap: float = 0.25
) -> Iterator[float]:
    """The pauses between two status checks of a wait: every ``first`` seconds for the first
    ``quick`` seconds (a sandbox that starts in tens of milliseconds is seen within
    ``first`` of it), then doubling up to ``cap`` seconds, then steady."""
    waited = 0.0
    while waited < quick:
        yield first
        waited += first
    delay = first
    while True:
        delay = min(delay * factor, cap)
        yield delay


class _StatusPredicates:
    """The status machine's questions, for any model with ``status`` and ``status_reason``."""

    __slots__ = ()
    status: str
    status_reason: str

    @property
    def state(self) -> str:
        """The status (``starting``, ``running``, ``done``, ``errored``, ``failed``,
        ``cancelled``); the official client's name for it."""
        return self.status

    @property
    def is_active(self) -> bool:
        """Starting or running."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_running(self) -> bool:
        """Ready: commands can run (``exec``), terminals attach."""
        return self.status == "running"

    @property
    def is_terminal(self) -> bool:
        """Ended: done, errored, failed or cancelled. A status never changes after that."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_committed(self) -> bool:
        """Done, and its changes landed in ``commit_id``."""
        return self.status == "done" and self.status_reason == "committed"

    @property
    def has_no_changes(self) -> bool:
        """Done, with nothing to commit."""
        return self.status == "done" and self.status_reason == "no_changes"

    @property
    def is_awaiting_approval(self) -> bool:
        """Done, with changes waiting for a human to approve them at ``web_url``."""
        return self.status == "done" and self.status_reason == "awaiting_approval"


@frozen
class SandboxStatus(_StatusPredicates):
    """``GET .../sandboxes/{id}/status``: where the sandbox is in its life.

    ``status`` and ``status_reason`` together say what happened: ``done`` is ``committed``
    (read ``commit_id``), ``no_changes`` or ``awaiting_approval`` (read ``web_url``);
    ``errored`` is ``exit_non_zero`` (read ``exit_code``); ``failed`` names the cause (read
    ``error_message``); ``cancelled``.
    """

    status: str
    status_reason: str = ""
    exit_code: int | None = None
    commit_id: str | None = None
    web_url: str | None = None
    error_message: str | None = None

    def describe(self) -> str:
        """``status/reason`` with the error message and exit code when there are some."""
        text = f"{self.status}/{self.status_reason}" if self.status_reason else self.status
        if self.exit_code is not None and not self.is_active:
            text += f" (exit code {self.exit_code})"
        if self.error_message:
            text += f": {self.error_message}"
        return text


@frozen
class RunAs:
    """The principal a sandbox runs as instead of the caller: an ``agent`` or a ``role``."""

    type: str
    id: str


@frozen
class SandboxData(_StatusPredicates):
    """A sandbox's full record (``GET .../sandboxes/{id}`` and the listing)."""

    id: str
    repository_id: str = ""
    image: str = ""
    command: tuple[str, ...] | None = None
    mountpoint: str = ""
    path_prefix: str = ""
    timeout_seconds: int | None = None
    mode: str = ""
    env_vars: dict[str, str] = field(factory=dict)
    status: str = ""
    status_reason: str = ""
    error_message: str | None = None
    exit_code: int | None = None
    commit_id: str | None = None
    web_url: str | None = None
    volume_name: str | None = None
    container_id: str | None = None
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    def to_status(self) -> SandboxStatus:
        """The status part of the record."""
        return SandboxStatus(
            status=self.status,
            status_reason=self.status_reason,
            exit_code=self.exit_code,
            commit_id=self.commit_id,
            web_url=self.web_url,
            error_message=self.error_message,
        )


@frozen
class SandboxCreated:
    """The body of ``POST .../sandboxes``."""

    sandbox_id: str


@frozen
class SandboxOutcome:
    """How a sandbox ended, from its terminal status.

    ``kind`` is ``committed`` (``commit_id`` is the new commit), ``no_changes``,
    ``awaiting_approval`` (a human approves the changes at ``web_url``), or a failure:
    ``errored`` (non-zero exit), ``failed`` (``status.error_message`` says why) or
    ``cancelled``. ``ok`` is true for the first three.
    """

    kind: Literal["committed", "no_changes", "awaiting_approval", "errored", "failed", "cancelled"]
    status: SandboxStatus
    commit_id: str | None = None
    web_url: str | None = None

    @classmethod
    def from_status(cls, status: SandboxStatus) -> SandboxOutcome:
        """The outcome of a terminal status (``ValueError`` for an active one)."""
        if status.is_committed:
            return cls("committed", status, commit_id=status.commit_id)
        if status.has_no_changes:
            return cls("no_changes", status)
        if status.is_awaiting_approval:
            return cls("awaiting_approval", status, web_url=status.web_url)
        if status.status in ("errored", "cancelled"):
            return cls(status.status, status)  # type: ignore[arg-type]
        if status.is_active:
            raise ValueError(f"a sandbox that is {status.status} has no outcome yet")
        return cls("failed", status)

    @property
    def ok(self) -> bool:
        return self.kind in ("committed", "no_changes", "awaiting_approval")

    @property
    def is_committed(self) -> bool:
        return self.kind == "committed"

    @property
    def has_no_changes(self) -> bool:
        return self.kind == "no_changes"

    @property
    def is_awaiting_approval(self) -> bool:
        return self.kind == "awaiting_approval"


class OutputStream:
    """The captured output of a command (bytes, verbatim).

    ``read()`` gives the bytes, ``text()`` decodes them; ``iter_bytes``, ``iter_text`` and
    ``iter_lines`` walk them. ``str(stream)`` is ``text()``; two streams are equal when
    their bytes are.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytes(data)

    def read(self) -> bytes:
        return self._data

    def text(self, encoding: str = "utf-8") -> str:
        """The bytes decoded; undecodable bytes become U+FFFD."""
        return self._data.decode(encoding, errors="replace")

    def iter_bytes(self, chunk_size: int = 8192) -> Iterator[bytes]:
        """The bytes in slices of ``chunk_size``."""
        _check_chunk_size(chunk_size)
        for start in range(0, len(self._data), chunk_size):
            yield self._data[start : start + chunk_size]

    def iter_text(self, chunk_size: int = 8192, encoding: str = "utf-8") -> Iterator[str]:
        """The text in slices of ``chunk_size`` characters."""
        _check_chunk_size(chunk_size)
        text = self.text(encoding)
        for start in range(0, len(text), chunk_size):
            yield text[start : start + chunk_size]

    def iter_lines(self, encoding: str = "utf-8") -> Iterator[str]:
        """The lines of the text, without their endings (``str.splitlines``: ``\\n``,
        ``\\r\\n``, ``\\r`` and the Unicode line breaks); nothing for empty output."""
        yield from self.text(encoding).splitlines()

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __str__(self) -> str:
        return self.text()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OutputStream):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"OutputStream({len(self._data)} bytes)"


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be at least 1, got {chunk_size!r}")


def _output_stream(value: OutputStream | bytes) -> OutputStream:
    return value if isinstance(value, OutputStream) else OutputStream(value)


@frozen
class RunResult:
    """What a command did: its output and its exit code (``-1`` when it has none, e.g. the
    sandbox failed before the command ended)."""

    stdout: OutputStream = field(converter=_output_stream)
    stderr: OutputStream = field(converter=_output_stream)
    exit_code: int

    @property
    def ok(self) -> bool:
        """The exit code is 0."""
        return self.exit_code == 0


@frozen
class OutputEvent:
    """Bytes a running command wrote, and to which stream, in production order."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@frozen
class TerminalExit:
    """A terminal's process ended with ``exit_code`` (``-1`` if the server gave none)."""

    exit_code: int


@frozen
class SandboxTriggerCondition:
    """When a trigger fires: a commit changes a path under ``prefix`` (``type="prefix"``) or
    the path ``path`` (``type="path_exact"``); ``diff_type`` narrows it to ``added``,
    ``removed`` or ``changed`` paths (default ``any``)."""

    type: str
    prefix: str | None = None
    path: str | None = None
    diff_type: str | None = None


@frozen
class SandboxTriggerConfig:
    """The sandbox a trigger starts (the fields of a sandbox's create request)."""

    image: str
    command: tuple[str, ...] | None = None
    mountpoint: str | None = None
    path_prefix: str | None = None
    timeout_seconds: int | None = None
    env_vars: dict[str, str] | None = None


@frozen
class SandboxTriggerData:
    """A sandbox trigger's record."""

    id: str
    name: str = ""
    repository_id: str = ""
    description: str = ""
    enabled: bool = True
    conditions: tuple[SandboxTriggerCondition, ...] = ()
    sandbox_config: SandboxTriggerConfig | None = None
    run_as: RunAs | None = None
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@frozen
class SandboxTriggerRun:
    """One evaluation of a trigger on a commit: ``status`` is ``pending``, ``created`` (with
    ``sandbox_id``), ``skipped`` or ``failed`` (``reason`` says why)."""

    id: str
    repository_id: str = ""
    trigger_id: str = ""
    commit_id: str = ""
    status: str = ""
    reason: str = ""
    sandbox_id: str | None = None
    matched_paths: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


def without_none(data: Any) -> Any:
    """Unstructured model data with the ``None`` members of its objects left out (the API's
    "not given"), recursively."""
    if isinstance(data, dict):
        return {key: without_none(value) for key, value in data.items() if value is not None}
    if isinstance(data, list):
        return [without_none(item) for item in data]
    return data
