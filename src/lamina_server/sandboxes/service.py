"""The sandbox orchestrator: the status machine, one task per live sandbox, and the way in
for ``/exec`` and ``/terminal``.

A sandbox is a session with a process attached. Creating one opens a session on the
repository's HEAD and records the sandbox ``starting/created``; its task then resolves the
image (``failed/image_not_found``), checks out the session's base (shared between sandboxes at
the same commit), starts the runner over an overlay whose upper directory receives the
sandbox's writes, and moves it to ``running``. What ends it:

- one-shot and interactive: the main command exits; 0 lands the changes (:mod:`.landing`:
  ``done/committed``, ``done/no_changes`` or ``failed/commit_failed``; or ``done/
  awaiting_approval`` until a decision ends it, :mod:`.held`), anything else is
  ``errored/exit_non_zero`` and rolls the session back;
- service: ``/finish`` lands, DELETE rolls back;
- for every mode: DELETE is ``cancelled/cancelled_by_user``, the timeout
  ``failed/timeout``, a runner or engine failure ``failed/internal_error``, and a server that
  stopped (or crashed: :meth:`Sandboxes.take_over`) ``failed/sandbox_lost``. None of those lands
  anything.

Every end stops the runner first, so no process of the sandbox outlives its status.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import anyio

from lamina_server.background import TaskHost
from lamina_server.governance import audit
from lamina_server.governance.approvals import (
    ApprovalRecord,
    Approvals,
)
from lamina_server.principals import Committer, Principal
from lamina_server.repositories import Repositories
from lamina_server.sandboxes import landing
from lamina_server.sandboxes.checkouts import Checkouts
from lamina_server.sandboxes.environment import SecretSource, sandbox_environment
from lamina_server.sandboxes.errors import (
    SandboxElsewhere,
    SandboxFinished,
    SandboxNotFound,
    SandboxNotReady,
    SandboxStateConflict,
    WrongMode,
)
from lamina_server.sandboxes.gate import PolicyGate, acting_as
from lamina_server.sandboxes.held import Landings, decided
from lamina_server.sandboxes.images import ImageNotFound, Images
from lamina_server.sandboxes.live import Live
from lamina_server.sandboxes.logs import SandboxLog, read_finished
from lamina_server.sandboxes.models import (
    AWAITING_APPROVAL,
    CANCELLED,
    CANCELLED_BY_USER,
    CREATED,
    ERRORED,
    EXIT_NON_ZERO,
    FAILED,
    IMAGE_NOT_FOUND,
    INITIALIZING,
    INTERACTIVE,
    INTERNAL_ERROR,
    ONE_SHOT,
    POLICY_VIOLATION,
    RUNNING,
    SANDBOX_LOST,
    SERVICE,
    STARTING,
    TIMEOUT,
    Origin,
    Outcome,
    SandboxRecord,
    SandboxRequest,
)
from lamina_server.sandboxes.records import SandboxRecords
from lamina_server.sandboxes.runners.base import (
    Limits,
    Process,
    Runner,
    RunnerError,
    SandboxSpec,
    write_inputs,
)
from lamina_server.sandboxes.triggers import TriggerRecord
from lamina_server.storage import journal
from lamina_server.storage.blobs import BlobStore
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.versioning import VersionStore
from lamina_server.versioning.errors import VersioningError

log = logging.getLogger("lamina.sandboxes")

TERMINAL_SIZE = (80, 24)
DEFAULT_SHELL = ("/bin/sh",)
_FINISH, _CANCEL = "finish", "cancel"


class Sandboxes:
    """Creates, runs, ends and answers for sandboxes. :meth:`serve` runs their tasks."""

    def __init__(
        self,
        *,
        db: Database,
        versions: VersionStore,
        blobs: BlobStore,
        images: Images,
        checkouts: Checkouts,
        runner: Runner,
        folder: Path,
        limits: Limits,
        default_image: str,
        gate: PolicyGate,
        secrets: SecretSource,
        approvals: Approvals,
        repositories: Repositories,
        base_url: str,
        replica_id: str,
    ) -> None:
        self.records = SandboxRecords(db)
        self._versions = versions
        self._blobs = blobs
        self._images = images
        self._checkouts = checkouts
        self._runner = runner
        self._folder = folder
        self._limits = limits
        self.default_image = default_image
        self._secrets = secrets
        self._gate = gate
        self._landings = Landings(approvals, repositories, base_url)
        self.replica_id = replica_id
        self._live: dict[str, Live] = {}
        # Runs the sandboxes' tasks (the app's lifespan serves it); cancelled, they end.
        self.tasks = TaskHost("sandbox service")
        # Told (repository id, sandbox id) of each sandbox once it has ended (evidence).
        self.on_ended: Callable[[str, str], Awaitable[None]] | None = None
        self.unavailable = runner.check()

    # --- running ------------------------------------------------------------------------------

    async def take_over(self, alive: set[str]) -> None:
        """Sandboxes that a dead replica (a previous process of this server, or another
        server on the database) left active are ``failed/sandbox_lost``, their sessions rolled
        back and what their runner left here released (:mod:`lamina_server.storage.replicas`
        calls it at startup and after each heartbeat)."""
        lost = await self.records.orphaned(alive)
        await self._runner.reap([self._folder / record.id / "scratch" for record in lost])
        for record in lost:
            await self._end(
                record,
                Outcome(FAILED, SANDBOX_LOST, error_message="the server stopped while it ran"),
            )
            self._clean(record.id)

    # --- requests -----------------------------------------------------------------------------

    async def create(
        self,
        repository_id: str,
        creator: Principal | Committer,
        request: SandboxRequest,
        *,
        origin: Origin | None = None,
    ) -> SandboxRecord:
        if not self.tasks.serving:
            raise RuntimeError("the sandbox service is not serving")
        sandbox_id = str(uuid.uuid4())
        audit.annotate(resource_kind="sandbox", resource_id=sandbox_id)
        session = await self._versions.create_session(
            repository_id, created_by=Committer(creator.type, creator.id, creator.name)
        )
        now = utcnow()
        record = SandboxRecord(
            id=sandbox_id,
            repository_id=repository_id,
            request=request,
            outcome=Outcome(STARTING, CREATED),
            session_id=session.id,
            created_by_type=creator.type,
            created_by=creator.id,
            created_by_name=creator.name,
            created_at=now,
            updated_at=now,
            finished_at=None,
            trigger_id=origin.trigger_id if origin else None,
            trigger_depth=origin.depth if origin else 0,
        )
        folder = self._folder / record.id
        folder.mkdir(parents=True, mode=0o700)
        await self.records.insert(record, self.replica_id)
        live = Live(record, folder, SandboxLog(folder / "log"))
        self._live[record.id] = live
        self.tasks.start_soon(self._run, live)
        return record

    async def launch_for_trigger(
        self, repository_id: str, trigger: TriggerRecord, *, commit_id: str, depth: int
    ) -> str:
        """Starts a trigger's one-shot sandbox (:class:`~.dispatch.Launcher`) on the
        repository's HEAD, which the commit that fired it has just become or passed."""
        if self.unavailable:
            raise RuntimeError(f"sandboxes cannot run: {self.unavailable}")
        request = trigger.sandbox_request(self.default_image)
        creator = Committer(trigger.created_by_type, trigger.created_by, f"trigger {trigger.name}")
        record = await self.create(
            repository_id, creator, request, origin=Origin(trigger.id, depth)
        )
        return record.id

    async def get(self, repository_id: str, sandbox_id: str) -> SandboxRecord:
        """The record; a live sandbox's from memory (a status poll reads no database)."""
        live = self._live.get(sandbox_id)
        if live is not None and live.record.repository_id == repository_id:
            return replace(live.record, outcome=live.outcome)
        return await self.records.get(repository_id, sandbox_id)

    async def wait_for_change(
        self, repository_id: str, sandbox_id: str, seconds: float, *, seen: str | None = None
    ) -> None:
        """Returns when a live sandbox's status moves on (starting → running, running →
        ended), or after ``seconds``; at once for a sandbox that is not live here, or whose
        status is no longer ``seen`` (what the caller last saw)."""
        live = self._live.get(sandbox_id)
        if live is None or live.record.repository_id != repository_id:
            return
        if seen is not None and seen != live.outcome.status:
            return
        change = live.ready if live.outcome.status == STARTING else live.ended
        with anyio.move_on_after(seconds):
            await change.wait()

    async def cancel(self, repository_id: str, sandbox_id: str) -> None:
        live = await self._active(repository_id, sandbox_id, conflict=True)
        self._request_end(live, _CANCEL)

    async def finish(self, repository_id: str, sandbox_id: str) -> None:
        record = await self.records.get(repository_id, sandbox_id)
        if record.request.mode != SERVICE:
            raise WrongMode(
                f"sandbox {sandbox_id!r} is a {record.request.mode} sandbox: only service "
                "sandboxes are finished this way (the others end when their command exits)"
            )
        live = await self._active(repository_id, sandbox_id, conflict=True)
        self._request_end(live, _FINISH)

    async def logs(self, repository_id: str, sandbox_id: str) -> AsyncIterator[bytes] | None:
        """The log, followed while the sandbox runs; None when it is gone.
        :class:`SandboxElsewhere` when another replica holds it."""
        await self.records.get(repository_id, sandbox_id)
        live = self._live.get(sandbox_id)
        if live is not None and not live.log.closed:
            return live.log.follow()
        path = self._folder / sandbox_id / "log"
        if path.exists():
            return read_finished(path)
        await self._check_here(sandbox_id)
        return None

    async def running(
        self, repository_id: str, sandbox_id: str, *, mode: str | None = None
    ) -> Live:
        """The live sandbox to exec in (or attach to): 503 while it starts, 410 once ended;
        :class:`SandboxElsewhere` when another replica runs it."""
        live = self._live.get(sandbox_id)
        if (
            live is not None
            and live.record.repository_id == repository_id
            and (mode is None or live.record.request.mode == mode)
            and live.box is not None
            and live.ending is None
            and not live.ended.is_set()
        ):
            return live  # the common case, answered without the database
        record = await self.records.get(repository_id, sandbox_id)
        if mode is not None and record.request.mode != mode:
            raise WrongMode(
                f"sandbox {sandbox_id!r} is a {record.request.mode} sandbox, not {mode}"
            )
        live = self._live.get(sandbox_id)
        if live is None and record.outcome.active:
            await self._check_here(sandbox_id)
        if live is None or live.ended.is_set() or live.ending is not None:
            outcome = record.outcome
            if outcome.active:
                raise SandboxStateConflict(f"sandbox {sandbox_id!r} is ending")
            raise SandboxFinished(sandbox_id, outcome.status, outcome.status_reason)
        if live.box is None:
            raise SandboxNotReady(sandbox_id)
        return live

    async def spawn(
        self,
        live: Live,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Process:
        """One ``/exec`` command in a running sandbox."""
        assert live.box is not None
        return await live.box.spawn(
            argv,
            env={**live.env, **(env or {})},
            cwd=cwd or live.record.request.mountpoint,
        )

    async def _check_here(self, sandbox_id: str) -> None:
        """:class:`SandboxElsewhere` when another replica runs (or ran) the sandbox."""
        owner = await self.records.replica_of(sandbox_id)
        if owner is not None and owner != self.replica_id:
            raise SandboxElsewhere(sandbox_id, owner)

    async def _active(self, repository_id: str, sandbox_id: str, *, conflict: bool) -> Live:
        record = await self.records.get(repository_id, sandbox_id)
        live = self._live.get(sandbox_id)
        if live is None and record.outcome.active:
            await self._check_here(sandbox_id)
        if live is None or live.ending is not None or not record.outcome.active:
            outcome = record.outcome
            raise SandboxStateConflict(
                f"sandbox {sandbox_id!r} is already {outcome.status}"
                + (f" ({outcome.status_reason})" if outcome.status_reason else "")
                if not outcome.active
                else f"sandbox {sandbox_id!r} is already ending"
            )
        return live

    def _request_end(self, live: Live, how: str) -> None:
        live.ending = how
        # The request's audit entry is written with the sandbox's end, which it causes.
        live.end_entries = journal.pending()
        live.stop.set()

    # --- a sandbox's life ----------------------------------------------------------------------

    async def _run(self, live: Live) -> None:
        record = live.record
        request = record.request
        outcome: Outcome | None = None
        try:
            with anyio.move_on_after(request.timeout_seconds) as timer:
                outcome = await self._start_and_wait(live)
            if timer.cancelled_caught:
                outcome = Outcome(
                    FAILED,
                    TIMEOUT,
                    error_message=f"the sandbox ran past its {request.timeout_seconds}-second "
                    "timeout and was stopped",
                )
        except ImageNotFound as exc:
            outcome = Outcome(FAILED, IMAGE_NOT_FOUND, error_message=str(exc))
        except RunnerError as exc:
            outcome = Outcome(FAILED, INTERNAL_ERROR, error_message=str(exc))
        except anyio.get_cancelled_exc_class():
            outcome = Outcome(FAILED, SANDBOX_LOST, error_message="the server stopped")
            raise
        except Exception as exc:
            log.exception("sandbox %s failed", record.id)
            outcome = Outcome(FAILED, INTERNAL_ERROR, error_message=f"internal error: {exc}")
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop_box(live)
                if outcome is None:
                    outcome = Outcome(FAILED, SANDBOX_LOST, error_message="the server stopped")
                if outcome.status == "done":
                    outcome = await self._land(live)
                await self._end(record, outcome, live)

    async def _start_and_wait(self, live: Live) -> Outcome | None:
        """Starts the sandbox, then waits for what ends it; a landing is ``done`` (pending)."""
        record = live.record
        request = record.request
        image = await self._images.resolve(request.image)
        live.outcome = Outcome(STARTING, INITIALIZING)
        base = await self._versions.get_session(record.repository_id, record.session_id or "")
        live.checkout = lower = await self._checkouts.checkout(
            record.repository_id, base.base_commit, request.path_prefix
        )
        for skipped in lower.skipped:
            live.log.note(f"not shown in the sandbox: {skipped.path} ({skipped.reason})")

        async def mounted() -> list[str]:
            tree = await self._versions.list_tree(
                record.repository_id, base.base_commit, prefix=request.path_prefix
            )
            return [path for path, _ in tree]

        folders = {name: live.folder / name for name in ("upper", "work", "scratch")}
        for folder in folders.values():
            folder.mkdir(mode=0o755)
        spec = SandboxSpec(
            sandbox_id=record.id,
            image=image,
            lower=lower.path,
            upper=folders["upper"],
            work=folders["work"],
            scratch=folders["scratch"],
            mountpoint=request.mountpoint,
            limits=self._limits,
            inputs=write_inputs(live.folder / "input", request.files) if request.files else None,
        )
        refusal: str | None = None

        async def judge() -> None:
            nonlocal refusal
            verdict = await self._gate.may_read(
                acting_as(record), record.repository_id, request.path_prefix, mounted
            )
            live.decisions.append(verdict)
            if not verdict.allowed:
                refusal = verdict.refusal

        async def environment() -> None:
            live.env = await sandbox_environment(
                self._secrets,
                image_env=image.env,
                repository_id=record.repository_id,
                run_as=request.run_as,
                request_env=request.env_vars,
            )

        async def start() -> None:
            live.box = await self._runner.start(spec)

        # The sandbox is made ready while its principal and environment are looked up: nothing
        # runs in it before both are settled. A step that fails fails the start with its own
        # error (the others finish first).
        failures: list[Exception] = []

        async def step(work: Callable[[], Awaitable[None]]) -> None:
            try:
                await work()
            except Exception as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tasks:
            for work in (judge, environment, start):
                tasks.start_soon(step, work)
        if failures:
            raise failures[0]
        if refusal is not None:
            return Outcome(
                FAILED,
                POLICY_VIOLATION,
                error_message=f"the sandbox would show what its principal may not read: "
                f"{refusal} (give it a path_prefix it may read whole)",
            )
        box = live.box
        assert box is not None
        try:
            if request.mode == ONE_SHOT and request.command:
                live.main = await box.spawn(
                    list(request.command), env=live.env, cwd=request.mountpoint
                )
            elif request.mode == INTERACTIVE:
                live.main = await box.spawn(
                    list(request.command or DEFAULT_SHELL),
                    env=live.env,
                    cwd=request.mountpoint,
                    terminal=TERMINAL_SIZE,
                )
        except RunnerError as exc:  # the user's command cannot start: as a shell would say
            live.log.note(str(exc))
            return Outcome(ERRORED, EXIT_NON_ZERO, exit_code=127, error_message=str(exc))
        live.outcome = Outcome(RUNNING)  # what a status poll answers from, at once
        await self.records.move(record.id, Outcome(RUNNING))
        live.ready.set()
        if live.main is None and request.mode != SERVICE:
            return Outcome("done")  # a one-shot sandbox without a command: a no-op
        return await self._wait(live)

    async def _wait(self, live: Live) -> Outcome:
        main = live.main
        if main is None:
            await live.stop.wait()
        else:
            async with anyio.create_task_group() as tasks:

                async def watch_stop() -> None:
                    await live.stop.wait()
                    tasks.cancel_scope.cancel()

                tasks.start_soon(watch_stop)
                live.main_exit = await self._pump_main(live, main)
                tasks.cancel_scope.cancel()
        if live.ending == _CANCEL:
            return Outcome(CANCELLED, CANCELLED_BY_USER)
        if live.ending == _FINISH or live.main_exit == 0:
            return Outcome("done")
        assert live.box is not None and live.main_exit is not None
        limit = live.box.limit_exceeded()
        reason = f" (stopped by the sandbox's {limit} limit)" if limit else ""
        return Outcome(
            ERRORED,
            EXIT_NON_ZERO,
            exit_code=live.main_exit,
            error_message=f"the command exited with code {live.main_exit}{reason}",
        )

    async def _pump_main(self, live: Live, main: Process) -> int:
        """Copies the main command's output into the log (and an attached terminal) as it is
        produced; its exit code."""

        async def pump(stream: AsyncIterator[bytes]) -> None:
            async for chunk in stream:
                live.log.write(chunk)
                await live.terminal.write(chunk)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(pump, main.read_stdout())
            tasks.start_soon(pump, main.read_stderr())
        live.main_exit = await main.wait()
        live.exited.set()
        return live.main_exit

    async def _stop_box(self, live: Live) -> None:
        live.ready.set()
        live.exited.set()
        if live.box is not None:
            try:
                await live.box.stop()
            except Exception:
                log.exception("stopping sandbox %s failed", live.id)

    async def _land(self, live: Live) -> Outcome:
        record = live.record
        assert live.checkout is not None, "a sandbox lands only after it started"
        try:
            entry = await self._landings.entry(record)
            return await landing.land(
                record,
                upper=live.folder / "upper",
                lower=live.checkout.path,
                versions=self._versions,
                blobs=self._blobs,
                gate=self._gate,
                note=live.log.note,
                decide=live.decisions.append,
                hold=partial(self._landings.hold, record),
                landing_entries=(entry,),
                exit_code=live.main_exit,
            )
        except Exception as exc:
            log.exception("landing sandbox %s failed", record.id)
            return Outcome(FAILED, INTERNAL_ERROR, error_message=f"internal error: {exc}")

    async def _end(self, record: SandboxRecord, outcome: Outcome, live: Live | None = None) -> None:
        """Records the terminal outcome, rolls back a session that did not land, and lets go
        of the live sandbox."""
        if outcome.status != "done" and record.session_id:
            with contextlib.suppress(VersioningError):  # closed already
                await self._versions.rollback_session(record.repository_id, record.session_id)
        if outcome.exit_code is None and live is not None and live.main_exit is not None:
            outcome = replace(outcome, exit_code=live.main_exit)
        decisions = [asdict(verdict) for verdict in live.decisions] if live is not None else None
        with journal.carrying(live.end_entries if live is not None else ()):
            moved = await self.records.move(record.id, outcome, decisions)
        if live is not None:
            live.log.close()
            live.ended.set()
            self._live.pop(record.id, None)
            self._clean(record.id)
            if live.checkout is not None:
                self._checkouts.release(live.checkout)
                await self._checkouts.prune()
        # A sandbox held for approval has not ended yet: its decision ends it.
        if moved and self.on_ended is not None and outcome.status_reason != AWAITING_APPROVAL:
            await self.on_ended(record.repository_id, record.id)

    async def approval_decided(self, approval: ApprovalRecord) -> None:
        """An approvals listener: a sandbox that waited for the decision ends as it says."""
        if approval.sandbox_id is None:
            return
        record = await self.records.get(approval.repository_id, approval.sandbox_id)
        concluded = await self.records.conclude(record.id, decided(approval, record.outcome))
        if concluded is not None and self.on_ended is not None:
            await self.on_ended(record.repository_id, record.id)

    def _clean(self, sandbox_id: str) -> None:
        """Drops what a finished sandbox kept on disk, but its log."""
        for name in ("upper", "work", "scratch", "input"):
            shutil.rmtree(self._folder / sandbox_id / name, ignore_errors=True)


__all__ = ["SandboxNotFound", "Sandboxes"]
