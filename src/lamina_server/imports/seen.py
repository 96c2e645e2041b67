"""What earlier imports copied into a repository: per path, the connector, the source object's
ETag and size, and the blob it became. A re-run copies only what changed: an object whose
ETag and size match what was recorded, and whose blob HEAD still holds, is left as it is."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lamina_server.imports.tables import import_objects
from lamina_server.storage.db import Database
from lamina_server.versioning.sql import dialect_insert

_BATCH = 500  # paths per lookup
_WRITE_BATCH = 1000  # rows per write


async def imported_before(
    db: Database, repository_id: str, paths: list[str]
) -> dict[str, tuple[str, str, int, str]]:
    """What earlier imports recorded for ``paths``: connector, ETag, size, blob."""
    found: dict[str, tuple[str, str, int, str]] = {}
    columns = import_objects.c
    for start in range(0, len(paths), _BATCH):
        query = sa.select(
            columns.path, columns.connector_id, columns.source_etag, columns.size, columns.address
        ).where(
            columns.repository_id == repository_id,
            columns.path.in_(paths[start : start + _BATCH]),
        )
        async with db.connect() as conn:
            for row in (await conn.execute(query)).all():
                found[row.path] = (row.connector_id, row.source_etag, row.size, row.address)
    return found


def record_imported(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Records (in the import's landing transaction) what it copied, replacing older records."""
    if not rows:
        return
    statement = dialect_insert(conn, import_objects)
    statement = statement.on_conflict_do_update(
        index_elements=[import_objects.c.repository_id, import_objects.c.path],
        set_={
            "connector_id": statement.excluded.connector_id,
            "source_etag": statement.excluded.source_etag,
            "size": statement.excluded.size,
            "address": statement.excluded.address,
        },
    )
    for start in range(0, len(rows), _WRITE_BATCH):
        conn.execute(statement, rows[start : start + _WRITE_BATCH])
