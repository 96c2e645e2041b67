"""Firing sandbox triggers: every landed commit is matched against its repository's triggers.

Durability comes from an outbox. :class:`TriggerOutbox`, the engine's recorder for this, writes
"commit C landed in repository R" in the commit's own transaction — for commits and reverts,
and only when the repository has an enabled trigger (one indexed query, so the commits of
other repositories pay next to nothing). :class:`TriggerDispatcher`, a background task of the
app, drains the outbox: it diffs each commit against its first parent, matches the enabled
triggers (:func:`~lamina_server.sandboxes.triggers.matched_paths`), records a run per matching
trigger, starts each run's sandbox through the :class:`Launcher`, and deletes the outbox row.
The engine wakes it when a commit lands (:attr:`VersionStore.on_landed`); it also polls every
:data:`POLL_INTERVAL` seconds, and at startup it drains what a previous process left.

A trigger fires at most once per commit: a run is unique per (trigger, commit), and a row
processed again after a crash launches nothing for runs that exist. A run a crash left
``pending`` (its launch may or may not have happened) is marked ``failed``/``interrupted``,
never launched again. One dispatcher drains a database's outbox.

Loop safety: the sandbox a trigger starts commits with metadata :data:`~.models.META_TRIGGER_ID` (the
trigger's id) and :data:`~.models.META_TRIGGER_DEPTH` (how many triggers led to it). A commit never fires
the trigger that made it (run ``skipped``/``self_triggered``), and a commit at depth
:data:`MAX_TRIGGER_DEPTH` or more fires nothing (``skipped``/``max_depth``), so triggers never
chain without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

import sqlalchemy as sa

from lamina_server.sandboxes.models import META_TRIGGER_DEPTH, META_TRIGGER_ID
from lamina_server.sandboxes.trigger_tables import sandbox_triggers, trigger_outbox, trigger_runs
from lamina_server.sandboxes.triggers import (
    TriggerRecord,
    matched_paths,
    time_ordered_id,
    trigger_record,
)
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.versioning import ChangeEvent, RefNotFound, VersionStore

logger = logging.getLogger("lamina_server.triggers")

MAX_TRIGGER_DEPTH = 3
MAX_MATCHED_PATHS = 1000  # a run records at most this many of the paths that matched
POLL_INTERVAL = 5.0  # seconds between looks at the outbox when nothing wakes the dispatcher
_BATCH = 100  # outbox rows read at a time
_DIFF_PAGE = 1000


class Launcher(Protocol):
    """What starts a trigger's sandbox (the sandbox orchestrator)."""

    async def launch_for_trigger(
        self, repository_id: str, trigger: TriggerRecord, *, commit_id: str, depth: int
    ) -> str:
        """Starts a one-shot sandbox from ``trigger.sandbox_config`` on ``commit_id``, whose
        commit carries ``lamina.trigger_id`` = ``trigger.id`` and ``lamina.trigger_depth`` =
        ``depth``; returns its id. Raises, with a message fit for the run's ``reason``, when the
        sandbox cannot be started."""
        ...


class TriggerOutbox:
    """The engine's recorder that queues landed commits for the dispatcher, in their own
    transaction."""

    def record(self, conn: sa.Connection, event: ChangeEvent) -> None:
        if event.action not in ("commit", "revert") or event.commit_id is None:
            return
        armed = conn.execute(
            sa.select(sa.literal(1))
            .where(
                sandbox_triggers.c.repository_id == event.repository_id,
                sandbox_triggers.c.enabled == sa.true(),
            )
            .limit(1)
        ).first()
        if armed is not None:
            conn.execute(
                trigger_outbox.insert().values(
                    repository_id=event.repository_id,
                    commit_id=event.commit_id,
                    created_at=utcnow(),
                )
            )


def trigger_depth(metadata: Mapping[str, str]) -> int:
    """How many triggers led to a commit (0 for anything else, malformed values included)."""
    value = metadata.get(META_TRIGGER_DEPTH, "")
    return int(value) if value.isdecimal() else 0


def verdict(trigger_id: str, metadata: Mapping[str, str]) -> str | None:
    """Why a commit with ``metadata`` must not fire the trigger (a skipped run's reason), or
    None when it may."""
    if metadata.get(META_TRIGGER_ID) == trigger_id:
        return "self_triggered"
    if trigger_depth(metadata) >= MAX_TRIGGER_DEPTH:
        return "max_depth"
    return None


class TriggerDispatcher:
    """Drains the outbox: see the module docstring."""

    def __init__(
        self,
        db: Database,
        versions: VersionStore,
        *,
        launcher: Launcher,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.db = db
        self.versions = versions
        self.launcher = launcher
        self.poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self, repository_id: str = "", commit_id: str = "") -> None:
        """Look at the outbox now (the engine's ``on_landed`` callback)."""
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-trigger-dispatcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.drain()
            except Exception:
                logger.exception("sandbox trigger dispatch failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):  # not TimeoutError before 3.11
                await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)

    async def drain(self) -> int:
        """Processes every outbox row, oldest first; returns how many. A row whose processing
        fails stays for the next drain."""
        done = 0
        last = 0
        while True:
            async with self.db.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(trigger_outbox)
                        .where(trigger_outbox.c.seq > last)
                        .order_by(trigger_outbox.c.seq)
                        .limit(_BATCH)
                    )
                ).all()
            if not rows:
                return done
            for row in rows:
                last = row.seq
                try:
                    await self.dispatch(row.repository_id, row.commit_id)
                except Exception:
                    logger.exception(
                        "sandbox triggers of commit %s in repository %s failed",
                        row.commit_id,
                        row.repository_id,
                    )
                    continue
                async with self.db.begin() as conn:
                    await conn.execute(
                        trigger_outbox.delete().where(trigger_outbox.c.seq == row.seq)
                    )
                done += 1

    async def dispatch(self, repository_id: str, commit_id: str) -> None:
        """Fires the repository's enabled triggers that ``commit_id`` matches."""
        triggers = await self._enabled(repository_id)
        if not triggers:
            return
        try:
            commit = await self.versions.get_commit(repository_id, commit_id)
        except RefNotFound:
            return
        matches = await self._match(repository_id, commit_id, commit.parents, triggers)
        if not matches:
            return
        runs = await self._record_runs(repository_id, commit_id, commit.metadata, matches)
        depth = trigger_depth(commit.metadata) + 1
        for run_id, trigger in runs:
            await self._launch(run_id, repository_id, trigger, commit_id, depth)

    async def _enabled(self, repository_id: str) -> list[TriggerRecord]:
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(sandbox_triggers).where(
                        sandbox_triggers.c.repository_id == repository_id,
                        sandbox_triggers.c.enabled == sa.true(),
                    )
                )
            ).all()
        return [trigger_record(row) for row in rows]

    async def _match(
        self,
        repository_id: str,
        commit_id: str,
        parents: tuple[str, ...],
        triggers: list[TriggerRecord],
    ) -> dict[str, tuple[TriggerRecord, list[str]]]:
        """The triggers the commit's diff against its first parent matches, with (at most
        :data:`MAX_MATCHED_PATHS` of) their matched paths; reads the diff a page at a time and
        stops once every trigger has as many paths as a run records."""
        found: dict[str, list[str]] = {trigger.id: [] for trigger in triggers}
        after: str | None = None
        while True:
            page = await self.versions.diff(
                repository_id,
                left=parents[0] if parents else None,
                right=commit_id,
                after=after,
                amount=_DIFF_PAGE,
            )
            changes = [(item.path, item.status or "") for item in page.items]
            for trigger in triggers:
                paths = found[trigger.id]
                if len(paths) < MAX_MATCHED_PATHS:
                    paths += matched_paths(trigger.conditions, changes)
                    del paths[MAX_MATCHED_PATHS:]
            full = all(len(paths) >= MAX_MATCHED_PATHS for paths in found.values())
            if not page.has_more or full:
                break
            after = page.next_offset
        return {
            trigger.id: (trigger, found[trigger.id]) for trigger in triggers if found[trigger.id]
        }

    async def _record_runs(
        self,
        repository_id: str,
        commit_id: str,
        metadata: Mapping[str, str],
        matches: dict[str, tuple[TriggerRecord, list[str]]],
    ) -> list[tuple[str, TriggerRecord]]:
        """Inserts a run for each matching trigger that is still enabled and has none for this
        commit — ``pending`` when it may fire, else ``skipped`` — and returns the pending ones.
        Runs a crash left pending become ``failed``/``interrupted``."""
        now = utcnow()
        pending: list[tuple[str, TriggerRecord]] = []
        async with self.db.begin() as conn:
            await conn.execute(
                trigger_runs.update()
                .where(
                    trigger_runs.c.commit_id == commit_id,
                    trigger_runs.c.trigger_id.in_(matches),
                    trigger_runs.c.status == "pending",
                )
                .values(status="failed", reason="interrupted", updated_at=now)
            )
            existing = set(
                (
                    await conn.execute(
                        sa.select(trigger_runs.c.trigger_id).where(
                            trigger_runs.c.commit_id == commit_id,
                            trigger_runs.c.trigger_id.in_(matches),
                        )
                    )
                ).scalars()
            )
            live = set(
                (
                    await conn.execute(
                        sa.select(sandbox_triggers.c.id).where(
                            sandbox_triggers.c.id.in_(matches),
                            sandbox_triggers.c.enabled == sa.true(),
                        )
                    )
                ).scalars()
            )
            for trigger_id, (trigger, paths) in matches.items():
                if trigger_id in existing or trigger_id not in live:
                    continue
                reason = verdict(trigger_id, metadata)
                run_id = time_ordered_id()
                await conn.execute(
                    trigger_runs.insert().values(
                        id=run_id,
                        repository_id=repository_id,
                        trigger_id=trigger_id,
                        commit_id=commit_id,
                        status="pending" if reason is None else "skipped",
                        reason=reason or "",
                        sandbox_id=None,
                        matched_paths=paths,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if reason is None:
                    pending.append((run_id, trigger))
        return pending

    async def _launch(
        self, run_id: str, repository_id: str, trigger: TriggerRecord, commit_id: str, depth: int
    ) -> None:
        try:
            sandbox_id = await self.launcher.launch_for_trigger(
                repository_id, trigger, commit_id=commit_id, depth=depth
            )
        except Exception as exc:
            logger.warning("sandbox trigger %s could not start its sandbox: %s", trigger.id, exc)
            values = {"status": "failed", "reason": str(exc) or type(exc).__name__}
        else:
            values = {"status": "created", "sandbox_id": sandbox_id}
        async with self.db.begin() as conn:
            await conn.execute(
                trigger_runs.update()
                .where(trigger_runs.c.id == run_id)
                .values(**values, updated_at=utcnow())
            )
