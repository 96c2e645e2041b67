"""Organizations and repositories against the real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lamina import (
    AsyncClient,
    AsyncOrganization,
    AsyncRepository,
    BadRequestError,
    ConflictError,
    NotFoundError,
)
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


async def test_organizations_list_get_create(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    name = unique_name("org")
    created = await client.organizations.create(name, display_name="Test Org")
    assert isinstance(created, AsyncOrganization)
    assert (created.name, created.display_name) == (name, "Test Org")
    assert created.id

    fetched = await client.organizations.get(name)
    assert (fetched.id, fetched.display_name, fetched.created_at) == (
        created.id,
        "Test Org",
        created.created_at,
    )
    names = [org.name async for org in client.organizations.list()]
    assert local_server.org in names
    assert name in names
    assert [org.name async for org in client.organizations.list(amount=1)] == names[:1]

    with pytest.raises(NotFoundError):
        await client.organizations.get(unique_name("missing"))
    with pytest.raises(ConflictError):
        await client.organizations.create(name, display_name="again")
    with pytest.raises(BadRequestError):
        await client.organizations.create("Not A Slug!", display_name="bad")


async def test_members_list(client: AsyncClient, local_server: LocalServer) -> None:
    members = [member async for member in client.organization(local_server.org).members.list()]
    assert len(members) >= 1
    assert all(member.user_id and member.organization_id for member in members)
    assert any(member.username for member in members)


async def test_repositories_create_list_get(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    org = await client.organizations.create(unique_name("org"), display_name="Repos")
    names = sorted(unique_name("repo") for _ in range(3))
    for name in names:
        repo = await org.repositories.create(name, description=f"about {name}")
        assert repo.description == f"about {name}"
        assert repo.visibility == "private"
    listed = [repo async for repo in org.repositories.list(page_size=2)]
    assert sorted(repo.name for repo in listed) == names
    assert all(repo.org == org.name for repo in listed)
    assert [repo.name async for repo in org.repositories.list(amount=2)] == [
        repo.name for repo in listed[:2]
    ]

    handle = org.repositories.get(names[0])
    loaded = await handle.refresh()
    assert loaded is handle
    assert handle.description == f"about {names[0]}"

    with pytest.raises(BadRequestError):
        await org.repositories.create("bad name with spaces")


async def test_repository_handle_is_lazy_and_updates(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    name = unique_name("repo")
    await client.organization(local_server.org).repositories.create(name)

    repo = await client.repository(f"{local_server.org}/{name}")
    assert isinstance(repo, AsyncRepository)
    assert repo.path == f"{local_server.org}/{name}"
    assert repo.id
    assert repo.description == ""
    assert repo.created_by_type == "user"
    assert repo.created_at is not None

    updated = await repo.update(description="now described", retention_days=30)
    assert updated is repo
    assert repo.description == "now described"
    assert repo.retention_days == 30
    other = await client.repository(f"{local_server.org}/{name}").refresh()
    assert other.description == "now described"

    await repo.delete()
    with pytest.raises(NotFoundError):
        await client.repository(f"{local_server.org}/{name}").refresh()


async def test_missing_repository_raises_not_found(
    client: AsyncClient, local_server: LocalServer
) -> None:
    repo = client.repository(f"{local_server.org}/does-not-exist")
    with pytest.raises(NotFoundError):
        await repo.refresh()
    with pytest.raises(NotFoundError):
        await repo.session()
    with pytest.raises(NotFoundError):
        _ = [entry async for entry in repo.objects.list()]
