"""Running import jobs: in the background, a bounded number at once, each landing as one
commit or nothing.

A job opens a session of its own (as its creator), lists its source, and leaves out what an
earlier import of the same source brought unchanged (:mod:`.seen`). Then it fills the session: a connector's objects are streamed from the source into the blob
store, :data:`OBJECT_CONCURRENCY` at a time, each read on the condition that it is still the
version listed; another repository's entries are staged as they are, pointing at the same
blobs (no byte is copied). Entries are staged :data:`STAGE_BATCH` at a time. Finally the
session commits through the same three-way merge as any session, and the job is marked
``completed`` in the commit's own transaction, with the record of what each path came from. A
failure anywhere rolls the session back (nothing lands) and ends the job ``failed`` with its
cause (:mod:`lamina_server.imports.jobs` lists the codes).

Replicas: a job belongs to the replica that runs it. When that replica dies, another takes it
over (:meth:`Imports.take_over`, after each heartbeat): it wins the job by compare-and-swap of
its owner, rolls back the session the dead replica left open (whose work was never
committed) and runs the job again from the start. Every write of a job is conditional on its
owner, and the completion is written in the commit's transaction, so a job lands once even if
a replica taken for dead wakes up and finishes its own run: its commit is refused and rolled
back.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.abc
import sqlalchemy as sa

from lamina_server.authz import Action, Authorizer
from lamina_server.authz.policy import Target, evaluate
from lamina_server.background import TaskHost
from lamina_server.identity import Identity, OrganizationRecord
from lamina_server.imports.connectors import Connectors
from lamina_server.imports.errors import (
    ConnectionFailed,
    ConnectorNotAttached,
    ImportsError,
    SourceChanged,
)
from lamina_server.imports.jobs import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    ImportJobRecord,
    ImportJobs,
    finish_in,
)
from lamina_server.imports.paths import connector_folder, folder, problem, shown
from lamina_server.imports.s3source import S3Source, SourceObject
from lamina_server.imports.seen import imported_before, record_imported
from lamina_server.principals import Committer, Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage.blobs import BlobError, BlobInfo, BlobStore
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.versioning import VersionStore
from lamina_server.versioning.errors import ConcurrentUpdate, MergeConflict, VersioningError
from lamina_server.versioning.models import Entry

log = logging.getLogger(__name__)

OBJECT_CONCURRENCY = 16  # objects one job copies at once
JOB_CONCURRENCY = 4  # jobs one replica runs at once (more wait, pending)
STAGE_BATCH = 1000  # entries staged per transaction
CLAIM_BATCH = 64  # blobs claimed at once (one sync of the blob store for them)
PROGRESS_INTERVAL = 1.0  # seconds between writes of a running job's progress
META_IMPORT_JOB = "lamina.import_job"


class JobFailed(Exception):
    """Ends a job ``failed``: ``code`` says what kind of failure, the message why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Superseded(Exception):
    """The job is no longer this replica's (taken over): its commit must not land."""


@dataclass
class _Live:
    record: ImportJobRecord
    imported: int = 0
    failures: list[JobFailed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a job stages: (path, entry) for a repository's entries, (path, object) for a
    connector's, and how many paths were left as they are."""

    entries: list[tuple[str, Entry]]
    objects: list[tuple[str, SourceObject]]
    unchanged: int
    source: S3Source | None = None


class Imports:
    def __init__(
        self,
        *,
        db: Database,
        versions: VersionStore,
        blobs: BlobStore,
        connectors: Connectors,
        authorizer: Authorizer,
        identity: Identity,
        replica_id: str,
    ) -> None:
        self.jobs = ImportJobs(db)
        self._versions = versions
        self._blobs = blobs
        self._connectors = connectors
        self._authorizer = authorizer
        self._identity = identity
        self.replica_id = replica_id
        self._live: dict[str, _Live] = {}
        # Runs the jobs' tasks (the app's lifespan serves it); a job cut short is taken over.
        self.tasks = TaskHost("import service")
        self._slots = anyio.CapacityLimiter(JOB_CONCURRENCY)

    # --- serving ------------------------------------------------------------------------------

    async def take_over(self, alive: set[str]) -> None:
        """Runs again, here, the active jobs of replicas that are gone (see the module
        docstring); :mod:`lamina_server.storage.replicas` calls it after each heartbeat."""
        for record, dead in await self.jobs.orphaned(alive):
            if record.id in self._live or not await self.jobs.claim(record, dead, self.replica_id):
                continue
            log.info("taking over import job %s of replica %s", record.id, dead)
            if record.session_id is not None:
                await self._roll_back(record.repository_id, record.session_id)
            self._start(replace(record, status=PENDING, session_id=None))

    def _start(self, record: ImportJobRecord) -> None:
        live = _Live(record)
        self.tasks.start_soon(self._run, live)
        self._live[record.id] = live

    # --- requests -----------------------------------------------------------------------------

    def _new(
        self,
        repository: RepositoryRecord,
        principal: Principal,
        *,
        destination_path: str,
        source_prefix: str,
        commit_message: str,
        **source: Any,
    ) -> ImportJobRecord:
        folder(destination_path, "destination_path")
        folder(source_prefix, "source_prefix")
        now = utcnow()
        return ImportJobRecord(
            id=str(uuid.uuid4()),
            repository_id=repository.id,
            organization_id=repository.organization_id,
            connector_id=source.get("connector_id"),
            source_repository_id=source.get("source_repository_id"),
            source_organization=source.get("source_organization", ""),
            source_repository=source.get("source_repository", ""),
            source_commit_id=source.get("source_commit_id"),
            source_prefix=source_prefix,
            destination_path=destination_path,
            commit_message=commit_message,
            status=PENDING,
            error=None,
            error_code=None,
            objects_imported=0,
            objects_unchanged=0,
            commit_id=None,
            session_id=None,
            created_by_type=principal.type,
            created_by=principal.id,
            created_by_name=principal.name,
            principal_organization_id=principal.organization_id,
            created_at=now,
            updated_at=now,
        )

    async def start_from_connector(
        self,
        repository: RepositoryRecord,
        principal: Principal,
        connector_id: str,
        *,
        destination_path: str,
        source_prefix: str,
        commit_message: str | None,
    ) -> ImportJobRecord:
        """Queues an import from a usable connector attached to the repository."""
        connector = await self._connectors.usable(repository.organization_id, connector_id)
        if not await self._connectors.is_attached(repository.id, connector.id):
            raise ConnectorNotAttached(connector_id, repository.name)
        record = self._new(
            repository,
            principal,
            destination_path=destination_path,
            source_prefix=source_prefix,
            commit_message=commit_message or f"Import from {connector.source_uri}",
            connector_id=connector.id,
        )
        return await self._queue(record)

    async def start_from_repository(
        self,
        repository: RepositoryRecord,
        principal: Principal,
        source: RepositoryRecord,
        *,
        destination_path: str,
        source_prefix: str,
        commit_message: str | None,
    ) -> ImportJobRecord:
        """Queues an import of the source repository's HEAD as it is now (the caller was
        authorized to read it)."""
        head = await self._versions.head(source.id)
        record = self._new(
            repository,
            principal,
            destination_path=destination_path,
            source_prefix=source_prefix,
            commit_message=commit_message
            or f"Import from {source.org_name}/{source.name} at {head[:12]}",
            source_repository_id=source.id,
            source_organization=source.org_name,
            source_repository=source.name,
            source_commit_id=head,
        )
        return await self._queue(record)

    async def _queue(self, record: ImportJobRecord) -> ImportJobRecord:
        await self.jobs.insert(record, self.replica_id)
        self._start(record)
        return record

    async def get(self, repository_id: str, job_id: str) -> ImportJobRecord:
        """The job; a job running here with its progress so far."""
        record = await self.jobs.get(repository_id, job_id)
        live = self._live.get(job_id)
        if live is not None and record.status == RUNNING:
            return replace(record, objects_imported=max(live.imported, record.objects_imported))
        return record

    # --- running ------------------------------------------------------------------------------

    async def _run(self, live: _Live) -> None:
        record = live.record
        try:
            async with self._slots:
                if not await self.jobs.update(record.id, self.replica_id, status=RUNNING):
                    return
                try:
                    await self._execute_reporting(live)
                except JobFailed as exc:
                    await self._fail(live, exc)
                except _Superseded:
                    if live.record.session_id is not None:
                        await self._roll_back(live.record.repository_id, live.record.session_id)
                    log.info("import job %s was taken over by another replica", record.id)
                except Exception:
                    log.exception("import job %s failed", record.id)
                    await self._fail(
                        live, JobFailed("internal", "internal error (see the server log)")
                    )
        finally:
            self._live.pop(record.id, None)

    async def _execute_reporting(self, live: _Live) -> None:
        """:meth:`_execute`, writing the job's progress while it runs."""
        failure: Exception | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._report_progress, live)
            try:
                await self._execute(live)
            except Exception as exc:
                failure = exc
            finally:
                tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _report_progress(self, live: _Live) -> None:
        reported = 0
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            if live.imported != reported:
                reported = live.imported
                await self.jobs.update(live.record.id, self.replica_id, objects_imported=reported)

    async def _fail(self, live: _Live, exc: JobFailed) -> None:
        record = live.record
        if record.session_id is not None:
            await self._roll_back(record.repository_id, record.session_id)
        message = f"nothing was imported: {exc}"
        log.info("import job %s failed: %s", record.id, message)
        await self.jobs.update(
            record.id,
            self.replica_id,
            status=FAILED,
            error=message,
            error_code=exc.code,
            objects_imported=0,
        )

    async def _roll_back(self, repository_id: str, session_id: str) -> None:
        with contextlib.suppress(VersioningError):  # committed or rolled back already
            await self._versions.rollback_session(repository_id, session_id)

    async def _execute(self, live: _Live) -> None:
        record = live.record
        committer = Committer(record.created_by_type, record.created_by, record.created_by_name)
        destination = folder(record.destination_path, "destination_path")
        session = await self._versions.create_session(record.repository_id, created_by=committer)
        live.record = record = replace(record, session_id=session.id)
        if not await self.jobs.update(record.id, self.replica_id, session_id=session.id):
            raise _Superseded
        existing = dict(
            await self._versions.list_tree(
                record.repository_id, session.base_commit, prefix=destination
            )
        )
        if record.connector_id is not None:
            plan = await self._plan_connector(record, destination, existing)
        else:
            plan = await self._plan_repository(record, destination, existing)
        staged: list[tuple[str, Entry]] = []
        if plan.source is not None:
            staged = await self._copy(live, plan.source, plan.objects)
        else:
            for start in range(0, len(plan.entries), STAGE_BATCH):
                batch = plan.entries[start : start + STAGE_BATCH]
                await self._versions.stage_put_many(record.repository_id, session.id, batch)
                live.imported += len(batch)
            staged = plan.entries
        await self._land(live, staged, plan)

    # --- planning -----------------------------------------------------------------------------

    async def _plan_connector(
        self, record: ImportJobRecord, destination: str, existing: dict[str, Entry]
    ) -> _Plan:
        assert record.connector_id is not None
        try:
            connector = await self._connectors.usable(record.organization_id, record.connector_id)
            settings = await self._connectors.settings(connector)
        except ImportsError as exc:
            raise JobFailed("connector_unusable", str(exc)) from None
        source = S3Source(settings)
        base = connector_folder(settings.prefix, record.source_prefix)
        listed: list[tuple[str, SourceObject]] = []
        refused: list[str] = []
        try:
            async for item in source.objects(base):
                if item.key.endswith("/") and item.size == 0:
                    continue  # a folder marker, not an object
                path = destination + item.key[len(base) :]
                reason = problem(path)
                if reason is not None:
                    refused.append(f"{item.key} ({reason})")
                listed.append((path, item))
        except ConnectionFailed as exc:
            raise JobFailed("source_unreachable", str(exc)) from None
        if refused:
            raise JobFailed(
                "invalid_source",
                f"{len(refused)} key(s) of {source.where(base)} cannot be object paths: "
                + shown(refused),
            )
        paths = [p for p, _ in listed if p in existing]
        known = await imported_before(self.jobs.db, record.repository_id, paths)
        objects = []
        for path, item in listed:
            entry = existing.get(path)
            was = known.get(path)
            if (
                entry is not None
                and was is not None
                and was == (record.connector_id, item.etag, item.size, entry.address)
            ):
                continue
            objects.append((path, item))
        return _Plan([], objects, len(listed) - len(objects), source)

    async def _plan_repository(
        self, record: ImportJobRecord, destination: str, existing: dict[str, Entry]
    ) -> _Plan:
        assert record.source_repository_id is not None and record.source_commit_id is not None
        base = folder(record.source_prefix, "source_prefix")
        entries = await self._versions.list_tree(
            record.source_repository_id, record.source_commit_id, prefix=base
        )
        await self._check_reads(record, [path for path, _ in entries])
        now = utcnow()
        staged = []
        for path, entry in entries:
            target = destination + path[len(base) :]
            reason = problem(target)
            if reason is not None:
                raise JobFailed("invalid_source", f"{path} cannot land at {target}: {reason}")
            held = existing.get(target)
            if held is not None and (held.address, held.etag) == (entry.address, entry.etag):
                continue
            staged.append((target, replace(entry, last_modified=now)))
        return _Plan(staged, [], len(entries) - len(staged))

    async def _check_reads(self, record: ImportJobRecord, paths: list[str]) -> None:
        """The job's principal must still be allowed to read every object it imports (a
        policy may allow some paths of the source and deny others)."""
        org: OrganizationRecord = await self._identity.organization(record.source_organization)
        policies = await self._authorizer.policies_of(record.principal, org)
        denied = "not a member of the source's organization" if policies is None else None
        refused: list[str] = []
        if policies is not None:
            for path in paths:
                verdict = evaluate(
                    policies, Action.GET_OBJECT, Target(org.name, record.source_repository, path)
                )
                if not verdict.allowed:
                    refused.append(path)
        if denied or refused:
            raise JobFailed(
                "forbidden",
                f"{record.created_by_name} may not read "
                + (denied or f"{len(refused)} object(s) of the source: {shown(refused)}"),
            )

    # --- copying ------------------------------------------------------------------------------

    async def _copy(
        self, live: _Live, source: S3Source, objects: list[tuple[str, SourceObject]]
    ) -> list[tuple[str, Entry]]:
        """Streams each object into the blob store; claims what was written in batches of
        :data:`CLAIM_BATCH` (one sync for the batch) and stages it; every entry staged. The
        first failure stops the rest and raises it."""
        record = live.record
        assert record.session_id is not None
        session_id = record.session_id
        limiter = anyio.CapacityLimiter(OBJECT_CONCURRENCY)
        written: list[tuple[str, SourceObject, BlobInfo]] = []
        claimed: list[tuple[str, Entry]] = []
        staged: list[tuple[str, Entry]] = []

        async def claim() -> None:
            batch = written[:]
            written.clear()
            if not batch:
                return
            outcomes = await self._blobs.claim_many([info.address for _, _, info in batch])
            now = utcnow()
            for (path, item, info), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BlobError):
                    raise JobFailed(
                        "blob_store", f"storing {source.where(item.key)} failed: {outcome}"
                    )
                kind = mimetypes.guess_type(item.key)[0] or "application/octet-stream"
                claimed.append((path, Entry(outcome, info.size, info.etag, kind, now, {})))

        async def stage() -> None:
            batch = claimed[:]
            claimed.clear()
            if batch:
                await self._versions.stage_put_many(record.repository_id, session_id, batch)
                staged.extend(batch)

        async def one(path: str, item: SourceObject, scope: anyio.CancelScope) -> None:
            async with limiter:
                if live.failures:
                    return
                try:
                    written.append((path, item, await self._write(source, item)))
                    live.imported += 1
                    if len(written) >= CLAIM_BATCH:
                        await claim()
                    if len(claimed) >= STAGE_BATCH:
                        await stage()
                except JobFailed as exc:
                    live.failures.append(exc)
                    scope.cancel()

        async with anyio.create_task_group() as group:
            for path, item in objects:
                group.start_soon(one, path, item, group.cancel_scope)
        with anyio.CancelScope(shield=True):
            if live.failures:
                for _, _, info in written:  # written, never claimed: dropped
                    await self._blobs.discard(info.address)
                written.clear()
            else:
                await claim()
            await stage()  # what was claimed is staged, so a rollback releases it to the GC
        if live.failures:
            raise JobFailed(
                live.failures[0].code,
                f"{live.failures[0]} (after copying {live.imported} of {len(objects)} objects)",
            )
        return staged

    async def _write(self, source: S3Source, item: SourceObject) -> BlobInfo:
        """One object streamed into the blob store, pending its claim."""
        problem_seen: list[ImportsError] = []

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in source.read(item):
                    yield chunk
            except ImportsError as exc:
                problem_seen.append(exc)
                raise

        address = self._blobs.new_address()
        try:
            return await self._blobs.write(address, chunks(), md5=source.md5_of(item))
        except Exception as exc:
            await self._blobs.discard(address)
            if problem_seen:
                failure = problem_seen[0]
                code = (
                    "source_changed" if isinstance(failure, SourceChanged) else "source_unreachable"
                )
                raise JobFailed(code, str(failure)) from None
            raise JobFailed(
                "blob_store", f"storing {source.where(item.key)} failed: {exc}"
            ) from None

    # --- landing ------------------------------------------------------------------------------

    async def _land(self, live: _Live, staged: list[tuple[str, Entry]], plan: _Plan) -> None:
        record = live.record
        assert record.session_id is not None
        if not staged:
            await self._roll_back(record.repository_id, record.session_id)
            done = await self.jobs.update(
                record.id,
                self.replica_id,
                status=COMPLETED,
                objects_imported=0,
                objects_unchanged=plan.unchanged,
            )
            if not done:
                raise _Superseded
            return
        sources = {path: item for path, item in plan.objects}
        rows = [
            {
                "repository_id": record.repository_id,
                "path": path,
                "connector_id": record.connector_id,
                "source_etag": sources[path].etag,
                "size": sources[path].size,
                "address": entry.address,
            }
            for path, entry in staged
            if record.connector_id is not None
        ]

        def complete(conn: sa.Connection, commit_id: str) -> None:
            if not finish_in(
                conn,
                record.id,
                self.replica_id,
                status=COMPLETED,
                commit_id=commit_id,
                objects_imported=len(staged),
                objects_unchanged=plan.unchanged,
            ):
                raise _Superseded
            record_imported(conn, rows)

        try:
            await self._versions.commit_session(
                record.repository_id,
                record.session_id,
                message=record.commit_message,
                metadata={META_IMPORT_JOB: record.id},
                committer=Committer(
                    record.created_by_type, record.created_by, record.created_by_name
                ),
                also=complete,
            )
        except MergeConflict as exc:
            raise JobFailed(
                "conflict",
                f"changes committed meanwhile conflict with the import on {len(exc.paths)} "
                f"path(s): {shown(list(exc.paths))}",
            ) from None
        except ConcurrentUpdate as exc:
            raise JobFailed("conflict", str(exc)) from None
