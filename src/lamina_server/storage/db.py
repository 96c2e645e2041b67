"""The metadata database: one async SQLAlchemy Core engine and the shared table registry.

Every domain module declares its tables on :data:`metadata` (``sqlalchemy.Table(..., metadata)``)
and talks to the database through :class:`Database`. Queries are written in SQLAlchemy Core, so
the same code runs on the embedded SQLite default and on PostgreSQL (driver ``psycopg`` 3).

SQLite has one writer: write transactions start with ``BEGIN IMMEDIATE`` behind an in-process
lock, and the versioning engine's transactions run in one worker-thread hop on a blocking
engine. PostgreSQL takes concurrent writers at ``READ COMMITTED``: what must not race guards
itself (HEAD's compare-and-swap and its row lock, the session's change counter, the audit
chain's advisory lock); reads run in ``REPEATABLE READ`` read-only transactions, so one read
transaction sees one snapshot, as on SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lamina_server.storage import journal
from lamina_server.storage.signal import ChangeSignal

metadata = sa.MetaData()

T = TypeVar("T")

# Writes a transaction's journal entries (:mod:`lamina_server.storage.journal`) on its connection.
JournalWriter = Callable[[sa.Connection, Sequence[Any]], None]

# Set on a write transaction's connection by what changes who may do what
# (:func:`changed_access`); the transaction then bumps the shared :class:`ChangeSignal`.
_ACCESS_CHANGED = "lamina_access_changed"


def changed_access(conn: AsyncConnection) -> None:
    """Marks ``conn``'s transaction as changing access: once it commits, every process's
    caches of keys and rights are told to reload (:mod:`lamina_server.storage.signal`)."""
    conn.info[_ACCESS_CHANGED] = True


READ_POOL_SIZE = 40  # anyio's default worker-thread limit: the most reads that run at once


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'metadata.db'}"


def async_url(url: str) -> str:
    """``url`` with the async driver this server uses for its database (``postgresql://``
    and ``postgres://`` mean ``postgresql+psycopg://``; ``sqlite://``, ``sqlite+aiosqlite://``).
    Raises ValueError for any other database."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url!r} is not a database URL (postgresql://... or sqlite:///...)")
    driver = {
        "postgresql": "postgresql+psycopg",
        "postgres": "postgresql+psycopg",
        "postgresql+psycopg": "postgresql+psycopg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
    }.get(scheme.lower())
    if driver is None:
        raise ValueError(f"{url!r}: the database must be PostgreSQL (postgresql://) or SQLite")
    return f"{driver}://{rest}"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the driver's implicit BEGIN is off).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL keeps readers off the writer's back; synchronous=NORMAL in WAL mode is durable against a
    # killed process (committed pages are in the WAL) and fsyncs at checkpoints.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # Writers take the write lock up front, so two read-then-write transactions can never
    # deadlock upgrading their locks; readers start a plain deferred transaction.
    immediate = conn.get_execution_options().get("lamina_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine. ``begin()`` is one atomic write transaction; ``connect()`` is for reads.

    Every write transaction writes, through :attr:`journal_writer` when one is set, the journal
    entries the task holds (:mod:`lamina_server.storage.journal`) before it commits.
    """

    def __init__(self, url: str) -> None:
        self.url = url = async_url(url)
        self.journal_writer: JournalWriter | None = None
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = not self.is_sqlite
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(url)
            self._read_engine = self.engine
            self._lone_read_engine: AsyncEngine | None = None
        else:
            # Requests read concurrently (keys, epochs, listings) and writers do not queue:
            # a pool that covers the worker threads' worth of concurrent work.
            self.engine = create_async_engine(
                url, pool_size=READ_POOL_SIZE // 2, max_overflow=READ_POOL_SIZE
            )
            self._read_engine = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            self._lone_read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_engine = self.engine.execution_options(lamina_write=True)
        # SQLite has one writer; queueing writers in-process is cheaper than busy-waiting on
        # the file lock. Other databases take concurrent writers.
        self._write_lock: anyio.Lock | None = anyio.Lock() if self.is_sqlite else None
        # Work written as one synchronous function of a connection (the versioning engine's
        # transactions) runs on SQLite in a single worker-thread hop through a blocking engine,
        # instead of one event-loop/driver-thread round trip per statement through aiosqlite.
        self._blocking: sa.Engine | None = None
        self._blocking_write: sa.Engine | None = None
        # The connection the write lock's holder writes on, kept open between transactions
        # (checking one out of the pool and back costs more than a small transaction on it)
        # and given back when one fails.
        self._writer: sa.Connection | None = None
        # Processes of one machine share a change counter; PostgreSQL replicas do not.
        self.signal: ChangeSignal | None = None
        if self.is_sqlite and self.engine.url.database:
            self.signal = ChangeSignal(Path(self.engine.url.database).with_name("access.signal"))
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
            blocking_url = self.engine.url.set(drivername="sqlite")
            # Every request reads through it (its key, with the access epoch): keep a
            # connection for each worker thread that may run at once, rather than open and
            # set up (PRAGMAs) an overflow connection per read under load.
            self._blocking = sa.create_engine(
                blocking_url,
                connect_args={"check_same_thread": False},
                pool_size=READ_POOL_SIZE,
                max_overflow=READ_POOL_SIZE,
            )
            event.listen(self._blocking, "connect", _sqlite_on_connect)
            event.listen(self._blocking, "begin", _sqlite_on_begin)
            self._blocking_write = self._blocking.execution_options(lamina_write=True)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception. One that
        changed access (:func:`changed_access`) bumps the change signal once it committed."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            async with self._write_engine.begin() as conn:
                conn.info.pop(_ACCESS_CHANGED, None)  # what a failed transaction left
                yield conn
                entries = self._journal()
                if entries:
                    await conn.run_sync(self._write_journal, entries)
                changed = conn.info.pop(_ACCESS_CHANGED, False)
            journal.mark_written(entries)
            if changed and self.signal is not None:
                self.signal.bump()

    def _journal(self) -> tuple[Any, ...]:
        return journal.pending() if self.journal_writer is not None else ()

    def _write_journal(self, conn: sa.Connection, entries: Sequence[Any]) -> None:
        assert self.journal_writer is not None
        self.journal_writer(conn, entries)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (a consistent snapshot inside one transaction)."""
        async with self._read_engine.connect() as conn:
            yield conn

    async def run_write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (committed on success, rolled back on error)."""
        blocking = self._blocking_write
        if blocking is None or self._write_lock is None:
            async with self.begin() as conn:
                return await conn.run_sync(fn)
        entries = self._journal()

        def transaction() -> T:
            conn, self._writer = self._writer or blocking.connect(), None
            try:
                with conn.begin():
                    result = fn(conn)
                    if entries:
                        self._write_journal(conn, entries)
            except BaseException:
                conn.close()  # back to the pool, reset; the next transaction takes another
                raise
            self._writer = conn
            return result

        async with self._write_lock:
            result = await anyio.to_thread.run_sync(transaction)
        journal.mark_written(entries)
        return result

    async def run_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` on a read connection (one consistent snapshot)."""
        if self._blocking is None:
            async with self.connect() as conn:
                return await conn.run_sync(fn)
        blocking = self._blocking

        def snapshot() -> T:
            with blocking.connect() as conn, conn.begin():
                return fn(conn)

        return await anyio.to_thread.run_sync(snapshot)

    async def read_scalar(self, statement: sa.Executable) -> Any:
        """The first column of the first row of one statement (``None`` for no row). A lone
        statement reads one snapshot by itself: on PostgreSQL it is sent outside any
        transaction, one round trip instead of three (BEGIN, the statement, ROLLBACK)."""
        if self._lone_read_engine is None:
            return await self.run_read(lambda conn: conn.execute(statement).scalar())
        async with self._lone_read_engine.connect() as conn:
            return await conn.scalar(statement)

    async def dispose(self) -> None:
        if self.signal is not None:
            self.signal.close()
        await self.engine.dispose()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._blocking is not None:
            self._blocking.dispose()
