"""Fixtures of the server's own tests that build parts of the server directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh metadata database (SQLite in ``tmp_path``) with every table."""
    database = Database(sqlite_url(tmp_path))
    await ensure_schema(database)
    yield database
    await database.dispose()
