"""Alembic's environment: migrations run on the connection :mod:`lamina_server.storage.schema`
hands over (``config.attributes["connection"]``), inside its transaction."""

from __future__ import annotations

from alembic import context

from lamina_server.storage.schema import target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying a table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
