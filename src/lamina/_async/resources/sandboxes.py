"""Sandboxes: compute next to a repository's data, in one-shot, interactive or service mode.

A sandbox mounts the repository (at ``/sandbox`` by default), runs, and on success commits what
it changed. ``repo.execute()`` runs one command that way; ``repo.shell()`` keeps a service
sandbox open for commands (``run()``, or ``process()`` for live output) and commits on a clean
exit, rolls back on an exception.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from lamina._async._exec import (
    DEFAULT_MAX_BUFFER,
    AsyncProcess,
    AsyncTerminal,
    as_bytes,
    open_websocket,
    send,
)
from lamina._async._pager import AsyncPager
from lamina._concurrency import asleep
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._errors import (
    CommandError,
    ConflictError,
    GoneError,
    InvalidArgumentError,
    LaminaError,
    NotFoundError,
    SandboxError,
    TransportError,
)
from lamina._frames import command_argv, launch_frame
from lamina._redact import redact
from lamina.models.sandboxes import (
    PIPE,
    RunAs,
    RunResult,
    SandboxCreated,
    SandboxData,
    SandboxOutcome,
    SandboxStatus,
    _Pipe,
    poll_delays,
)

if TYPE_CHECKING:
    from lamina._async.resources.repositories import AsyncRepository

#: Seconds a shell waits for its sandbox to be running, and then for its outcome.
SHELL_START_TIMEOUT = 300.0
SHELL_FINISH_TIMEOUT = 300.0


def command_text(command: str | Sequence[str]) -> str:
    """A command as ``CommandError.command`` shows it (a list joined with spaces)."""
    return command if isinstance(command, str) else " ".join(command)


def create_body(
    image: str,
    command: str | Sequence[str] | None,
    env: Mapping[str, str] | None,
    mountpoint: str | None,
    path_prefix: str | None,
    timeout: int | None,
    mode: str | None,
    run_as: RunAs | Mapping[str, str] | None,
) -> dict[str, Any]:
    """The create request: ``image`` and the keys given (``env`` is sent as ``env_vars``,
    ``timeout`` as ``timeout_seconds``)."""
    body: dict[str, Any] = {"image": image}
    if command is not None:
        body["command"] = command_argv(command)
    if mountpoint is not None:
        body["mountpoint"] = mountpoint
    if path_prefix is not None:
        body["path_prefix"] = path_prefix
    if timeout is not None:
        body["timeout_seconds"] = timeout
    if env is not None:
        body["env_vars"] = dict(env)
    if run_as is not None:
        body["run_as"] = (
            {"type": run_as.type, "id": run_as.id} if isinstance(run_as, RunAs) else dict(run_as)
        )
    if mode is not None:
        body["mode"] = mode
    return body


LONG_POLL = 10.0  # seconds a status check asks the server to wait for a change


class AsyncSandbox(AsyncDeferred):
    """A sandbox. Its full record (``data``) loads with ``refresh()``;
    sandboxes from ``list()``/``get()`` arrive loaded. ``status()`` asks for the current
    status; the record is a snapshot."""

    def __init__(
        self, repository: AsyncRepository, sandbox_id: str, data: SandboxData | None = None
    ) -> None:
        self._repository = repository
        self._client = repository.client
        self._id = sandbox_id
        self._data = data
        self._path = f"{repository.api_path}/sandboxes/{sandbox_id}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AsyncSandbox):
            return NotImplemented
        return self._id == other._id and self._repository.path == other._repository.path

    def __hash__(self) -> int:
        return hash((self._repository.path, self._id))

    @property
    def id(self) -> str:
        return self._id

    def _is_ready(self) -> bool:
        return self._data is not None

    async def _prepare(self) -> None:
        if self._data is None:
            await self.refresh()

    @property
    def data(self) -> SandboxData:
        """The record as last loaded."""
        self._require()
        assert self._data is not None
        return self._data

    async def refresh(self) -> AsyncSandbox:
        """Load the full record (``GET .../sandboxes/{id}``); returns the sandbox."""
        data = await self._client.request_json("GET", self._path)
        self._data = structure(self._client.converter, data, SandboxData)
        return self

    async def status(self, *, wait: float | None = None, seen: str | None = None) -> SandboxStatus:
        """The current status (``GET .../status``). With ``wait`` (seconds, at most 30), a
        Lamina server answers when the status moves on from ``seen`` (default: from what it
        is) or after that long; other servers answer at once."""
        if wait is None:
            data = await self._client.request_json("GET", f"{self._path}/status")
        else:
            params = {"wait": f"{wait:.3f}"} | ({"seen": seen} if seen else {})
            data = await self._client.request_json(
                "GET",
                f"{self._path}/status",
                params=params,
                timeout=httpx.Timeout(**{**self._client._timeout, "read": wait + 30}),
            )
        return structure(self._client.converter, data, SandboxStatus)

    async def cancel(self) -> None:
        """Stop the sandbox and discard its changes (the rollback path);
        :class:`~lamina.ConflictError` when it already ended."""
        await self._client.request("DELETE", self._path)

    async def finish(self) -> None:
        """End a service sandbox and commit its changes (the commit path). Returns at once;
        ``wait()`` for the outcome. :class:`~lamina.BadRequestError` for another mode,
        :class:`~lamina.ConflictError` when it already ended."""
        await self._client.request("POST", f"{self._path}/finish")

    async def wait(
        self, timeout: float | None = None, *, until: Literal["terminal", "running"] = "terminal"
    ) -> SandboxStatus:
        """Check the status until the sandbox ended (``until="running"``: until it is
        running) and return that status. Each check asks the server to answer when the status
        changes (a Lamina server does; so no polling); a server that answers at once is
        checked again 5 ms later at first, doubling up to 250 ms. :class:`~lamina.SandboxError`
        when ``timeout`` seconds pass first (the sandbox is left as it is), or, waiting for
        ``running``, when it ended first (its ``status`` says how)."""
        if until not in ("terminal", "running"):
            raise InvalidArgumentError(f"until is 'terminal' or 'running', got {until!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        delays = poll_delays()
        seen: str | None = None
        wait = LONG_POLL
        while True:
            asked = time.monotonic()
            first = seen is None
            if first:
                status = await self.status()
                waited = 0.0
            else:
                if deadline is not None:
                    wait = max(0.001, min(LONG_POLL, deadline - asked))
                status = await self.status(wait=wait, seen=seen)
                waited = time.monotonic() - asked
            seen = status.status
            if status.is_terminal:
                if until == "running":
                    raise SandboxError(
                        f"sandbox {self._id} ended before it was running: {status.describe()}",
                        status=status,
                    )
                return status
            if until == "running" and status.is_running:
                return status
            if deadline is not None and deadline - time.monotonic() <= 0:
                raise SandboxError(f"sandbox {self._id} is still {status.status} after {timeout} s")
            if first or waited >= wait * 0.9:
                continue  # next, ask the server to answer when the status changes
            delay = next(delays)
            if deadline is not None:
                delay = min(delay, deadline - time.monotonic())
            await asleep(max(delay, 0.0))

    async def logs(self, *, follow: bool = True) -> AsyncIterator[str]:
        """The lines of the sandbox's log (its main command's stdout and stderr, merged in
        production order), without their line endings, as the server streams them.

        While the sandbox runs the server keeps the log open until it ends: with ``follow``
        the wait for the next line is not limited; without it, the client's read timeout
        applies (an idle log raises :class:`~lamina.TransportError`).
        """
        options: dict[str, Any] = {}
        if follow:
            options["timeout"] = httpx.Timeout(**{**self._client._timeout, "read": None})
        async with self._client.stream("GET", f"{self._path}/logs/stdout", **options) as response:
            lines = response.aiter_lines()
            while True:
                try:
                    line = await anext(lines)
                except StopAsyncIteration:
                    return
                except httpx.HTTPError as exc:
                    raise TransportError(
                        redact(f"reading the log of sandbox {self._id} failed: {exc}")
                    ) from exc
                yield line

    async def read_log(self) -> bytes:
        """The whole log as bytes (waits, while the sandbox runs, for it to end)."""
        response = await self._client.request(
            "GET",
            f"{self._path}/logs/stdout",
            timeout=httpx.Timeout(**{**self._client._timeout, "read": None}),
        )
        return response.content

    @asynccontextmanager
    async def process(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | str | _Pipe | None = PIPE,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> AsyncIterator[AsyncProcess]:
        """Start ``command`` (a str runs through ``sh -c``, a list as-is) in the running
        sandbox and yield the :class:`~lamina.AsyncProcess` with its live output.

        ``stdin``: :data:`~lamina.PIPE` (write it with ``proc.stdin``), bytes or text to send
        then close, or ``None`` for an empty stdin. One websocket per command; it is closed
        on leaving the block.
        """
        launch = launch_frame(command, env=env, cwd=cwd)
        connection = await open_websocket(self._client, f"{self._path}/exec")
        try:
            await send(connection, launch, "the command started")
            process = AsyncProcess(connection, command, max_buffer)
            if not isinstance(stdin, _Pipe):
                if stdin:
                    await process.stdin.write(stdin)
                await process.stdin.close()
            yield process
        finally:
            await connection.close()

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: bytes | str | None = None,
        check: bool = False,
    ) -> RunResult:
        """Run ``command`` in the running sandbox to its end and return its output and exit
        code. ``stdin`` is sent then closed (``None``: empty). ``check``:
        :class:`~lamina.CommandError` for a non-zero exit code."""
        stdout, stderr = bytearray(), bytearray()
        async with self.process(
            command, stdin=as_bytes(stdin) if stdin is not None else None, env=env, cwd=cwd
        ) as process:
            async for event in process:
                (stdout if event.stream == "stdout" else stderr).extend(event.data)
            exit_code = await process.wait()
            reason = process.exit_error or process.exit_reason
        result = RunResult(stdout=bytes(stdout), stderr=bytes(stderr), exit_code=exit_code)
        if check and exit_code != 0:
            detail = f" ({reason})" if reason else ""
            raise CommandError(
                f"command {command_text(command)!r} exited with code {exit_code}{detail}",
                result=result,
                command=command_text(command),
            )
        return result

    @asynccontextmanager
    async def terminal(
        self, *, cols: int | None = None, rows: int | None = None
    ) -> AsyncIterator[AsyncTerminal]:
        """Attach to an interactive sandbox's terminal (``mode="interactive"``); with
        ``cols`` and ``rows`` the window is sized first. The websocket closes on leaving
        the block."""
        connection = await open_websocket(self._client, f"{self._path}/terminal")
        try:
            terminal = AsyncTerminal(connection)
            if cols is not None and rows is not None:
                await terminal.resize(cols, rows)
            yield terminal
        finally:
            await connection.close()


class AsyncSandboxes:
    """A repository's sandboxes."""

    def __init__(self, repository: AsyncRepository) -> None:
        self._repository = repository
        self._client = repository.client
        self._path = f"{repository.api_path}/sandboxes"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repository.path!r})"

    async def create(
        self,
        image: str | None = None,
        command: str | Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        mountpoint: str | None = None,
        path_prefix: str | None = None,
        timeout: int | None = None,
        mode: Literal["one-shot", "interactive", "service"] | None = None,
        run_as: RunAs | Mapping[str, str] | None = None,
    ) -> AsyncSandbox:
        """Create and start a sandbox; returns it (record not loaded).

        ``image`` defaults to the client's ``default_sandbox_image``; ``command`` is a list
        (run as-is) or a str (run through ``sh -c``); ``env`` its environment; ``timeout``
        the most seconds it may run; ``mode`` ``one-shot`` (the server's default),
        ``interactive`` or ``service``; ``run_as`` an agent or role to run as. Only the
        arguments given are sent.
        """
        body = create_body(
            image or self._client.default_sandbox_image,
            command,
            env,
            mountpoint,
            path_prefix,
            timeout,
            mode,
            run_as,
        )
        data = await self._client.request_json("POST", self._path, json=body)
        created = structure(self._client.converter, data, SandboxCreated)
        return AsyncSandbox(self._repository, created.sandbox_id)

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncSandbox]:
        """The repository's sandboxes, with their records; ``amount`` caps the total."""
        return self._client.paginate(
            self._path, SandboxData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncSandbox(self._repository, data.id, data))

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        """The sandbox ``sandbox_id``, loaded (:class:`~lamina.NotFoundError` if none)."""
        return await AsyncSandbox(self._repository, sandbox_id).refresh()


class AsyncShell:
    """A service sandbox held open for commands, committed on a clean exit.

    Entering creates the sandbox (``mode="service"``) and waits until it runs
    (:class:`~lamina.SandboxError` naming its status if it ends first). ``run()`` runs a
    command to its end; ``process()`` streams one live. Each command has its own connection
    and process: no shell state (``cd``, variables) carries over; files under the mount do.

    Leaving the block cleanly finishes the sandbox, waits for the outcome and sets
    :attr:`outcome` (``committed`` with ``commit_id``, ``no_changes``, or
    ``awaiting_approval`` with ``web_url``, which also warns); an outcome that is a failure
    raises :class:`~lamina.SandboxError`. Leaving with an exception cancels the sandbox (its
    changes are discarded) and lets the exception through.
    """

    def __init__(
        self,
        repository: AsyncRepository,
        *,
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int | None = None,
        mountpoint: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        self._repository = repository
        self._options: dict[str, Any] = {
            "env": env,
            "timeout": timeout,
            "mountpoint": mountpoint,
            "path_prefix": path_prefix,
        }
        self._image = image
        self._sandbox: AsyncSandbox | None = None
        self.outcome: SandboxOutcome | None = None

    def __repr__(self) -> str:
        sandbox_id = self._sandbox.id if self._sandbox is not None else None
        return f"{type(self).__name__}(sandbox={sandbox_id!r})"

    @property
    def sandbox(self) -> AsyncSandbox:
        """The shell's sandbox (once the shell is entered)."""
        if self._sandbox is None:
            raise LaminaError("the shell has no sandbox yet: use it as a context manager")
        return self._sandbox

    async def __aenter__(self) -> AsyncShell:
        sandbox = await self._repository.sandboxes.create(
            self._image, mode="service", **self._options
        )
        self._sandbox = sandbox
        try:
            await sandbox.wait(SHELL_START_TIMEOUT, until="running")
        except BaseException:
            with contextlib.suppress(LaminaError):
                await sandbox.cancel()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sandbox = self.sandbox
        if exc is not None:
            with contextlib.suppress(LaminaError):  # the block's own exception is the one to see
                await sandbox.cancel()
            return
        with contextlib.suppress(ConflictError):  # already ended: its status says how
            await sandbox.finish()
        status = await sandbox.wait(SHELL_FINISH_TIMEOUT)
        self.outcome = SandboxOutcome.from_status(status)
        if not self.outcome.ok:
            raise SandboxError(
                f"sandbox {sandbox.id} did not commit: {status.describe()}", status=status
            )
        if self.outcome.is_awaiting_approval:
            warnings.warn(
                f"Approval required - review and approve at: {status.web_url}", stacklevel=2
            )

    async def run(
        self,
        command: str | Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: bytes | str | None = None,
        check: bool = False,
    ) -> RunResult:
        """Run ``command`` (a str through ``sh -c``, a list as-is) and return its
        :class:`~lamina.RunResult`; ``check``: :class:`~lamina.CommandError` for a
        non-zero exit code."""
        return await self.sandbox.exec(command, env=env, cwd=cwd, stdin=stdin, check=check)

    def process(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | str | _Pipe | None = PIPE,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> AbstractAsyncContextManager[AsyncProcess]:
        """Start ``command`` with live output, as a context manager yielding the process
        (see :meth:`AsyncSandbox.process`)."""
        return self.sandbox.process(command, stdin=stdin, env=env, cwd=cwd, max_buffer=max_buffer)


async def execute(
    repository: AsyncRepository,
    command: str | Sequence[str],
    *,
    image: str | None,
    env: Mapping[str, str] | None,
    timeout: int | None,
    check: bool,
    mountpoint: str | None,
    path_prefix: str | None,
) -> RunResult:
    """``repo.execute()``: a one-shot sandbox, waited for, its log read as stdout."""
    sandbox = await repository.sandboxes.create(
        image,
        command,
        env=env,
        timeout=timeout,
        mountpoint=mountpoint,
        path_prefix=path_prefix,
    )
    try:
        status = await sandbox.wait(timeout)
    except BaseException:
        with contextlib.suppress(LaminaError):
            await sandbox.cancel()
        raise
    try:
        log = await sandbox.read_log()
    except (NotFoundError, GoneError):
        log = b""
    exit_code = status.exit_code if status.exit_code is not None else -1
    result = RunResult(stdout=log, stderr=b"", exit_code=exit_code)
    if status.is_awaiting_approval:
        warnings.warn(f"Approval required - review and approve at: {status.web_url}", stacklevel=3)
    failed = status.status in ("failed", "cancelled")
    if check and (exit_code != 0 or failed):
        raise CommandError(
            f"command {command_text(command)!r} ended {status.describe()}",
            result=result,
            command=command_text(command),
            status=status,
        )
    return result
