"""Connectors and imports through the SDK, against the real server: an import from another
repository waited for without blocking (with progress), connector errors as typed exceptions
(a type the server cannot serve, a connection that fails, disabled, deleted)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lamina import (
    AsyncClient,
    AsyncRepository,
    BadRequestError,
    GoneError,
    ImportTimeoutError,
    InvalidArgumentError,
    LockedError,
    NotFoundError,
    ServerError,
)
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


async def _fill(repo: AsyncRepository, paths: list[str]) -> str:
    async with repo.session() as session:
        await session.objects.put_many((path, path.encode()) for path in paths)
        commit_id: str = await session.commit("source data")
    return commit_id


async def test_import_from_another_repository_and_wait(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    org = client.organization(local_server.org)
    source = await org.repositories.create(unique_name("src"))
    target = await org.repositories.create(unique_name("dst"))
    await _fill(source, [f"train/{i}.txt" for i in range(30)] + ["other.txt"])

    job = await target.imports.create_from_repository(
        f"{local_server.org}/{source.name}",
        "copied/",
        source_prefix="train/",
        commit_message="Import training data",
    )
    assert job.status in ("pending", "running", "completed")
    seen: list[int] = []
    assert await job.wait(timeout=60, poll_interval=0.05, on_progress=seen.append) is job
    assert (job.status, job.objects_imported, job.error) == ("completed", 30, None)
    assert seen and seen[-1] == 30 and seen == sorted(seen)
    commit = await target.commits.get(job.commit_id or "")
    assert commit.message == "Import training data"
    got = await target.imports.get(job.id)
    assert (got.id, got.commit_id, got.data.source_repository) == (
        job.id,
        job.commit_id,
        source.name,
    )
    async with target.objects.get("copied/7.txt") as reader:
        assert await reader.read() == b"train/7.txt"

    again = await target.imports.create_from_repository(
        f"{local_server.org}/{source.name}", "copied/", source_prefix="train/"
    )
    await again.wait(timeout=60, poll_interval=0.05)
    assert (again.objects_imported, again.data.objects_unchanged, again.commit_id) == (0, 30, None)

    with pytest.raises(InvalidArgumentError):
        await target.imports.create_from_repository("no-slash", "x/")
    with pytest.raises(NotFoundError):
        await target.imports.get("00000000-0000-0000-0000-000000000000")


async def test_wait_times_out_with_the_job_as_last_read(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    org = client.organization(local_server.org)
    source = await org.repositories.create(unique_name("src"))
    target = await org.repositories.create(unique_name("dst"))
    # enough objects that the job is still at work when it is first read
    await _fill(source, [f"d/{index:05d}.txt" for index in range(3000)])
    job = await target.imports.create_from_repository(f"{local_server.org}/{source.name}", "")
    with pytest.raises(ImportTimeoutError) as caught:
        await job.wait(timeout=0)
    assert caught.value.job.id == job.id
    await job.wait(timeout=60, poll_interval=0.05)
    assert job.status == "completed"


async def test_connector_errors_are_typed(
    client: AsyncClient, local_server: LocalServer, repo: AsyncRepository
) -> None:
    connectors = client.organization(local_server.org).connectors
    with pytest.raises(BadRequestError, match="not supported by this server"):
        await connectors.create("g", "gcs", "gs://bucket/x", {})
    config = {
        "endpoint": "http://127.0.0.1:9",
        "access_key_id": "k",
        "secret_access_key": "s",
    }
    with pytest.raises(ServerError) as failed:
        await connectors.test(type="s3", source_uri="s3://bucket/x/", config=config)
    assert failed.value.status_code == 502 and "127.0.0.1:9" in failed.value.message

    connector = await connectors.create("closed-port", "s3", "s3://bucket/x/", config)
    assert (connector.type, connector.source_uri, connector.disabled) == (
        "s3",
        "s3://bucket/x/",
        False,
    )
    assert connector.id in [c.id async for c in connectors.list()]
    with pytest.raises(ServerError):
        await connector.test()
    attached = await repo.connectors.attach(connector.id)
    assert attached.id == connector.id
    assert [c.id async for c in repo.connectors.list()] == [connector.id]

    await connector.disable()
    assert connector.disabled
    with pytest.raises(LockedError):
        await connectors.test(connector.id)
    with pytest.raises(LockedError):
        await repo.imports.create_from_connector(connector.id, "in/")
    await connector.enable()
    await repo.connectors.detach(connector.id)
    assert [c async for c in repo.connectors.list()] == []

    await connectors.delete(connector.id)
    with pytest.raises(GoneError):
        await connectors.get(connector.id)
    with pytest.raises(GoneError):
        await connector.refresh()
