"""Sandbox triggers: a repository's rules "when a commit changes these paths, run a sandbox".

:class:`SandboxTriggers` keeps the triggers of each repository (create, list, get, full
replacement, enable/disable, delete) and lists each trigger's runs. :func:`matched_paths` is the
pure matcher: given a trigger's conditions and a commit's changes against its first parent, the
paths that make it fire. Firing itself is :mod:`lamina_server.sandboxes.dispatch`.

A condition is ``{"type": "prefix", "prefix": ...}`` or ``{"type": "path_exact", "path": ...}``
with a ``diff_type`` of ``any`` (the default), ``added``, ``removed`` or ``changed`` (the official
client's tests say ``modified``, read as ``changed``), which filters both kinds. A trigger fires
when any of its conditions matches one changed path.

::

    TriggerError
    ├── TriggerInvalid      a condition or setting that cannot work (names the field)
    ├── TriggerNotFound     no such trigger in the repository
    └── TriggerExists       the repository has a trigger of that name
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lamina_server.principals import Principal
from lamina_server.sandboxes.models import (
    DEFAULT_MOUNTPOINT,
    DEFAULT_TIMEOUT_SECONDS,
    ONE_SHOT,
    RunAs,
    SandboxRequest,
)
from lamina_server.sandboxes.trigger_tables import sandbox_triggers, trigger_runs
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

MAX_NAME_CHARS = 100  # the HTTP layer's bounds
MAX_CONDITIONS = 10
DIFF_TYPES = ("any", "added", "removed", "changed")
DIFF_TYPE_ALIASES = {"modified": "changed"}
# A diff item's status for each diff_type but "any".
_STATUS_OF = {"added": "added", "removed": "removed", "changed": "modified"}
RUN_STATUSES = ("pending", "created", "skipped", "failed")


# --- errors -----------------------------------------------------------------------------------


class TriggerError(Exception):
    """Root of the sandbox triggers' errors; ``str()`` is a human message."""


class TriggerInvalid(TriggerError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


class TriggerNotFound(TriggerError):
    def __init__(self, trigger_id: str) -> None:
        super().__init__(f"sandbox trigger {trigger_id!r} not found")
        self.trigger_id = trigger_id


class TriggerExists(TriggerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the repository already has a sandbox trigger named {name!r}")
        self.name = name


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """What a client sets on a trigger: all of it on create and on a (full) replacement.

    ``conditions`` are as :func:`normalize_conditions` returns them; ``sandbox_config`` holds
    ``image`` and any of ``command``, ``mountpoint``, ``path_prefix``, ``timeout_seconds``,
    ``env_vars``; ``run_as`` is ``{"type": "agent" | "role", "id": ...}`` or None.
    """

    name: str
    conditions: list[dict[str, str]]
    sandbox_config: dict[str, Any]
    description: str = ""
    run_as: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TriggerRecord:
    id: str
    repository_id: str
    name: str
    description: str
    enabled: bool
    conditions: list[dict[str, str]]
    sandbox_config: dict[str, Any]
    run_as: dict[str, str] | None
    created_by_type: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    def sandbox_request(self, default_image: str) -> SandboxRequest:
        """The one-shot sandbox the trigger starts (its config; ``default_image`` when it
        names none)."""
        config = self.sandbox_config
        prefix = str(config.get("path_prefix") or "").strip("/")
        return SandboxRequest(
            image=config.get("image") or default_image,
            command=tuple(config.get("command") or ()),
            mountpoint=config.get("mountpoint") or DEFAULT_MOUNTPOINT,
            path_prefix=f"{prefix}/" if prefix else "",
            timeout_seconds=config.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS,
            env_vars=dict(config.get("env_vars") or {}),
            mode=ONE_SHOT,
            run_as=RunAs(**self.run_as) if self.run_as else None,
        )


@dataclass(frozen=True, slots=True)
class TriggerRun:
    id: str
    repository_id: str
    trigger_id: str
    commit_id: str
    status: str  # pending | created | skipped | failed
    reason: str  # skipped: self_triggered | max_depth; failed: the launcher's message
    sandbox_id: str | None
    matched_paths: list[str]
    created_at: datetime
    updated_at: datetime


TriggerPage = tuple[list[TriggerRecord], bool]  # a page, and whether more follow
RunPage = tuple[list[TriggerRun], bool]


def trigger_record(row: sa.Row[Any]) -> TriggerRecord:
    return TriggerRecord(
        id=row.id,
        repository_id=row.repository_id,
        name=row.name,
        description=row.description,
        enabled=bool(row.enabled),
        conditions=list(row.conditions),
        sandbox_config=dict(row.sandbox_config),
        run_as=None if row.run_as is None else dict(row.run_as),
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def run_record(row: sa.Row[Any]) -> TriggerRun:
    return TriggerRun(
        id=row.id,
        repository_id=row.repository_id,
        trigger_id=row.trigger_id,
        commit_id=row.commit_id,
        status=row.status,
        reason=row.reason,
        sandbox_id=row.sandbox_id,
        matched_paths=list(row.matched_paths),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def time_ordered_id() -> str:
    """A version 7 UUID: 48 bits of Unix milliseconds, then random bits, so that ids sort by
    creation time (to the millisecond)."""
    millis = time.time_ns() // 1_000_000 & (1 << 48) - 1
    rand = int.from_bytes(os.urandom(10), "big")
    value = millis << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | rand & (1 << 62) - 1))


# --- conditions and matching ------------------------------------------------------------------


def normalize_conditions(conditions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The conditions as stored and served: ``type``, its ``prefix`` or ``path`` (the other
    dropped), and ``diff_type`` (default ``any``; ``modified`` read as ``changed``). Raises
    :class:`TriggerInvalid` naming the field of a condition that cannot match."""
    if not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise TriggerInvalid("conditions", f"must hold 1 to {MAX_CONDITIONS} conditions")
    normalized = []
    for index, condition in enumerate(conditions):
        where = f"conditions.{index}"
        kind = condition.get("type")
        diff_type = condition.get("diff_type") or "any"
        diff_type = DIFF_TYPE_ALIASES.get(diff_type, diff_type)
        if diff_type not in DIFF_TYPES:
            raise TriggerInvalid(f"{where}.diff_type", f"must be one of {', '.join(DIFF_TYPES)}")
        if kind == "prefix":
            key = "prefix"
        elif kind == "path_exact":
            key = "path"
        else:
            raise TriggerInvalid(f"{where}.type", "must be 'prefix' or 'path_exact'")
        value = condition.get(key)
        if not isinstance(value, str) or not value:
            raise TriggerInvalid(f"{where}.{key}", f"is required when type is {kind!r}")
        if "\x00" in value:
            raise TriggerInvalid(f"{where}.{key}", "must not contain NUL characters")
        normalized.append({"type": kind, key: value, "diff_type": diff_type})
    return normalized


def condition_matches(condition: Mapping[str, str], path: str, status: str) -> bool:
    """Whether one change (``status``: ``added``/``modified``/``removed``) meets a condition."""
    diff_type = condition.get("diff_type") or "any"
    diff_type = DIFF_TYPE_ALIASES.get(diff_type, diff_type)
    if diff_type != "any" and _STATUS_OF.get(diff_type) != status:
        return False
    if condition.get("type") == "prefix":
        return path.startswith(condition.get("prefix") or "\x00")
    if condition.get("type") == "path_exact":
        return path == condition.get("path")
    return False


def matched_paths(
    conditions: Sequence[Mapping[str, str]], changes: Iterable[tuple[str, str]]
) -> list[str]:
    """The changed paths that meet any of ``conditions``, in the order of ``changes`` (a
    commit's ``(path, status)`` pairs against its first parent). Empty: the trigger does not
    fire."""
    return [
        path
        for path, status in changes
        if any(condition_matches(condition, path, status) for condition in conditions)
    ]


def check_sandbox_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a sandbox is started from (unset ones dropped), with what the request's
    shape cannot say checked: an image to run, and a mountpoint that is an absolute path."""
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise TriggerInvalid("sandbox_config.image", "is required")
    mountpoint = config.get("mountpoint")
    if mountpoint is not None and not (
        isinstance(mountpoint, str) and mountpoint.startswith("/") and "\x00" not in mountpoint
    ):
        raise TriggerInvalid("sandbox_config.mountpoint", "must be an absolute path")
    return {key: value for key, value in config.items() if value is not None}


def check_spec(spec: TriggerSpec) -> TriggerSpec:
    """``spec`` with its conditions normalized; :class:`TriggerInvalid` names a bad field.

    The request's shape (types, lengths, ``timeout_seconds`` >= 1, string ``env_vars``) is
    checked by the HTTP layer's models; these are the rules across fields."""
    return TriggerSpec(
        name=spec.name,
        conditions=normalize_conditions(spec.conditions),
        sandbox_config=check_sandbox_config(spec.sandbox_config),
        description=spec.description,
        run_as=spec.run_as,
    )


# --- the service ------------------------------------------------------------------------------


def _of(repository_id: str, trigger_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        sandbox_triggers.c.repository_id == repository_id, sandbox_triggers.c.id == trigger_id
    )


class SandboxTriggers:
    """The triggers of every repository, by repository id; a trigger of another repository is
    not found."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, repository_id: str, spec: TriggerSpec, *, creator: Principal, enabled: bool = True
    ) -> TriggerRecord:
        spec = check_spec(spec)
        now = utcnow()
        record = TriggerRecord(
            id=str(uuid.uuid4()),
            repository_id=repository_id,
            name=spec.name,
            description=spec.description,
            enabled=enabled,
            conditions=spec.conditions,
            sandbox_config=spec.sandbox_config,
            run_as=spec.run_as,
            created_by_type=creator.type,
            created_by=creator.id,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    sandbox_triggers.insert().values(
                        id=record.id,
                        repository_id=repository_id,
                        name=record.name,
                        description=record.description,
                        enabled=record.enabled,
                        conditions=record.conditions,
                        sandbox_config=record.sandbox_config,
                        run_as=record.run_as,
                        created_by_type=record.created_by_type,
                        created_by=record.created_by,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise TriggerExists(spec.name) from None
        return record

    async def get(self, repository_id: str, trigger_id: str) -> TriggerRecord:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sandbox_triggers).where(_of(repository_id, trigger_id))
                )
            ).first()
        if row is None:
            raise TriggerNotFound(trigger_id)
        return trigger_record(row)

    async def list(self, repository_id: str, *, after: str | None, amount: int) -> TriggerPage:
        """One page ordered by name; ``after`` is the last name of the previous page."""
        query = sa.select(sandbox_triggers).where(sandbox_triggers.c.repository_id == repository_id)
        if after:
            query = query.where(sandbox_triggers.c.name > after)
        query = query.order_by(sandbox_triggers.c.name).limit(amount + 1)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [trigger_record(row) for row in rows[:amount]], len(rows) > amount

    async def replace(
        self, repository_id: str, trigger_id: str, spec: TriggerSpec
    ) -> TriggerRecord:
        """A full replacement of what a client sets; ``enabled`` and the creation stay."""
        spec = check_spec(spec)
        values = {
            "name": spec.name,
            "description": spec.description,
            "conditions": spec.conditions,
            "sandbox_config": spec.sandbox_config,
            "run_as": spec.run_as,
        }
        return await self._update(repository_id, trigger_id, values, name=spec.name)

    async def set_enabled(
        self, repository_id: str, trigger_id: str, enabled: bool
    ) -> TriggerRecord:
        return await self._update(repository_id, trigger_id, {"enabled": enabled})

    async def _update(
        self,
        repository_id: str,
        trigger_id: str,
        values: Mapping[str, Any],
        *,
        name: str | None = None,
    ) -> TriggerRecord:
        try:
            async with self._db.begin() as conn:
                result = await conn.execute(
                    sandbox_triggers.update()
                    .where(_of(repository_id, trigger_id))
                    .values(**values, updated_at=utcnow())
                )
                if result.rowcount == 0:
                    raise TriggerNotFound(trigger_id)
                row = (
                    await conn.execute(
                        sa.select(sandbox_triggers).where(_of(repository_id, trigger_id))
                    )
                ).one()
        except IntegrityError:
            raise TriggerExists(name or "") from None
        return trigger_record(row)

    async def delete(self, repository_id: str, trigger_id: str) -> None:
        """Removes the trigger and its runs."""
        async with self._db.begin() as conn:
            await conn.execute(trigger_runs.delete().where(trigger_runs.c.trigger_id == trigger_id))
            result = await conn.execute(
                sandbox_triggers.delete().where(_of(repository_id, trigger_id))
            )
            if result.rowcount == 0:
                raise TriggerNotFound(trigger_id)

    async def runs(
        self, repository_id: str, trigger_id: str, *, after: str | None, amount: int
    ) -> RunPage:
        """One page of the trigger's runs, newest first; ``after`` is the last run id of the
        previous page."""
        query = sa.select(trigger_runs).where(
            trigger_runs.c.repository_id == repository_id, trigger_runs.c.trigger_id == trigger_id
        )
        if after:
            query = query.where(trigger_runs.c.id < after)
        query = query.order_by(trigger_runs.c.id.desc()).limit(amount + 1)
        async with self._db.connect() as conn:
            known = (
                await conn.execute(
                    sa.select(sandbox_triggers.c.id).where(_of(repository_id, trigger_id))
                )
            ).first()
            if known is None:
                raise TriggerNotFound(trigger_id)
            rows = (await conn.execute(query)).all()
        return [run_record(row) for row in rows[:amount]], len(rows) > amount
