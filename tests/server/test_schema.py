"""The metadata database's schema and its migrations, on SQLite and on PostgreSQL: the baseline
migration makes exactly the tables the code declares, startup creates or refuses, and
``lamina server migrate`` is idempotent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import (
    BASELINE,
    SchemaError,
    alembic_config,
    ensure_schema,
    head_revision,
    migrate,
    target_metadata,
)
from tests import postgres

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"  # not the data-dir file tests redirect
    cluster: postgres.PostgresCluster = request.getfixturevalue("cluster")
    return cluster.database_url()


def _sync(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("+aiosqlite", "").replace("sqlite:", "sqlite+pysqlite:"))


def _diffs(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, target_metadata()))


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_the_migrations_make_exactly_the_declared_schema(url: str) -> None:
    engine = _sync(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert _diffs(engine) == []
        assert _revision(engine) == head_revision()
    finally:
        engine.dispose()


async def test_startup_creates_the_schema_and_migrate_is_idempotent(url: str) -> None:
    db = Database(url)
    try:
        assert await ensure_schema(db) == f"created the schema (revision {head_revision()})"
        current = f"the schema is current (revision {head_revision()})"
        assert await migrate(db) == current
        assert await migrate(db) == current
        assert await ensure_schema(db) == current
    finally:
        await db.dispose()
    engine = _sync(url)
    try:
        assert _diffs(engine) == []
        assert _revision(engine) == head_revision()
    finally:
        engine.dispose()


async def test_a_database_from_before_migrations_is_at_the_baseline(url: str) -> None:
    engine = _sync(url)
    try:
        with engine.begin() as conn:  # what Lamina 0.1 made: the baseline, no alembic_version
            command.upgrade(alembic_config(conn), BASELINE)
            conn.execute(sa.text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    engine = _sync(url)
    try:
        assert _revision(engine) == head_revision()
        with engine.connect() as conn:
            assert BASELINE in {s.revision for s in _walk(conn)}
    finally:
        engine.dispose()


def _walk(conn: sa.Connection) -> Iterator[Any]:
    from alembic.script import ScriptDirectory

    yield from ScriptDirectory.from_config(alembic_config(conn)).walk_revisions()


async def test_a_schema_this_version_does_not_know_is_refused(url: str) -> None:
    engine = _sync(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        engine.dispose()
    db = Database(url)
    try:
        with pytest.raises(SchemaError, match="revision ffff, which this version of Lamina"):
            await ensure_schema(db)
        with pytest.raises(SchemaError, match="run a newer Lamina"):
            await migrate(db)
    finally:
        await db.dispose()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina_server", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_migrate_command(url: str, tmp_path: Path) -> None:
    target = ["--database-url", url]
    first = _cli("migrate", *target)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created the schema")
    again = _cli("migrate", *target)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("the schema is current")

    bad = _cli("migrate", "--database-url", "mysql://host/db")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "PostgreSQL" in bad.stderr


def test_a_server_refuses_a_schema_it_does_not_know(url: str, tmp_path: Path) -> None:
    engine = _sync(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        engine.dispose()
    started = _cli(
        "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-write-config",
        "--database-url", url,
    )  # fmt: skip
    assert started.returncode == 1
    assert "error: the database's schema is at revision ffff" in started.stderr


def test_migrate_on_a_data_directory(tmp_path: Path) -> None:
    first = _cli("migrate", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "metadata.db").exists()
    assert _cli("migrate", "--data-dir", str(tmp_path)).stdout.startswith("the schema is current")
    engine = _sync(sqlite_url(tmp_path))
    try:
        assert _diffs(engine) == []
    finally:
        engine.dispose()


async def test_an_older_schema_is_migrated_on_sqlite_and_refused_on_postgresql(url: str) -> None:
    engine = _sync(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), BASELINE)
    finally:
        engine.dispose()
    db = Database(url)
    try:
        if db.is_sqlite:
            assert await ensure_schema(db) == (
                f"migrated the schema from revision {BASELINE} to {head_revision()}"
            )
        else:
            with pytest.raises(SchemaError, match="run `lamina server migrate"):
                await ensure_schema(db)
            assert await migrate(db) == (
                f"migrated the schema from revision {BASELINE} to {head_revision()}"
            )
        assert await migrate(db) == f"the schema is current (revision {head_revision()})"
    finally:
        await db.dispose()
    engine = _sync(url)
    try:
        assert _diffs(engine) == []
    finally:
        engine.dispose()
