"""Fixtures shared by the SDK tests: a client of the session's real server, and a fresh repository."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lamina import AsyncClient, AsyncRepository
from lamina.testing import LocalServer


@pytest.fixture
async def client(local_server: LocalServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url
    ) as client:
        yield client


@pytest.fixture
def repo(client: AsyncClient, repository: str) -> AsyncRepository:
    return client.repository(repository)
