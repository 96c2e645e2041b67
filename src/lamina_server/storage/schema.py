"""The metadata database's schema: created, checked and migrated with Alembic.

The migrations live in :mod:`lamina_server.storage.migrations` (``versions/``: the baseline is
the schema of Lamina 0.1, every later change a revision on top). A database records the revision
it is at in Alembic's ``alembic_version`` table.

At startup (:func:`ensure_schema`) an empty database gets the schema of :data:`metadata` and is
stamped at the newest revision; a database made before migrations existed (tables, no
``alembic_version``) is taken to be at the baseline. A database at an older revision is
migrated at once on SQLite (one machine, whose server owns the file) and refused on PostgreSQL,
where replicas of several versions may share it: ``lamina server migrate`` (:func:`migrate`)
upgrades it, and is a no-op on a database that is current. On PostgreSQL every step holds an
advisory lock, so replicas starting together on an empty database create it once.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from lamina_server.storage.db import Database, metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema every database made before migrations existed is at

# Every module that declares tables on :data:`metadata`.
TABLE_MODULES = (
    "lamina_server.gateway.tables",
    "lamina_server.governance.approvals_tables",
    "lamina_server.governance.audit_tables",
    "lamina_server.governance.evidence_tables",
    "lamina_server.identity.grants",
    "lamina_server.identity.tables",
    "lamina_server.imports.tables",
    "lamina_server.repositories.tables",
    "lamina_server.sandboxes.images",
    "lamina_server.sandboxes.tables",
    "lamina_server.sandboxes.trigger_tables",
    "lamina_server.secrets.tables",
    "lamina_server.storage.replicas",
    "lamina_server.velerian.tables",
    "lamina_server.versioning.tables",
)

_SCHEMA_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("lamina", 0)))


class SchemaError(Exception):
    """The database's schema is not one this server can run on (the message says what to do)."""


def target_metadata() -> sa.MetaData:
    """:data:`metadata` with every table of the server declared on it."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata


def alembic_config(conn: sa.Connection | None = None) -> Config:
    """Alembic's configuration: the migrations of this package, run on ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _revision(conn: sa.Connection) -> str | None:
    """The database's revision: None when it is empty; the baseline when its tables were made
    before migrations existed."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and set(sa.inspect(conn).get_table_names()) & set(metadata.tables):
        command.stamp(alembic_config(conn), BASELINE)
        return BASELINE
    return current


def _prepare(conn: sa.Connection, *, upgrade: bool, refuse_old: str = "") -> str:
    if conn.dialect.name == "postgresql":
        conn.execute(_SCHEMA_LOCK)
    target_metadata()
    head = head_revision()
    current = _revision(conn)
    if current is None:
        metadata.create_all(conn)
        command.stamp(alembic_config(conn), "head")
        return f"created the schema (revision {head})"
    if current == head:
        return f"the schema is current (revision {head})"
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if current not in known:
        raise SchemaError(
            f"the database's schema is at revision {current}, which this version of Lamina does "
            f"not know (its newest is {head}): run a newer Lamina"
        )
    if not upgrade:
        raise SchemaError(refuse_old.format(current=current, head=head))
    command.upgrade(alembic_config(conn), "head")
    return f"migrated the schema from revision {current} to {head}"


async def ensure_schema(db: Database) -> str:
    """At startup: create the schema of an empty database, migrate an older SQLite one; raise
    :class:`SchemaError` for an older PostgreSQL one (or a newer one). Says what it did."""
    refuse = (
        "the database's schema is at revision {current}, older than this server's ({head}): "
        "run `lamina server migrate --database-url URL` first"
    )
    return await db.run_write(lambda conn: _prepare(conn, upgrade=db.is_sqlite, refuse_old=refuse))


async def migrate(db: Database) -> str:
    """``lamina server migrate``: bring the schema to the newest revision (idempotent)."""
    return await db.run_write(lambda conn: _prepare(conn, upgrade=True))
