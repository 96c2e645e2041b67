"""A second principal for access tests: a fresh organization (created by the bootstrap admin,
who is its OrgAdmin) with a repository, and a plain member of it with its own key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from lamina.testing import LocalServer
from lamina_server.identity import Identity
from lamina_server.storage.db import Database, sqlite_url
from tests.conftest import RepoHttp


@dataclass
class Member:
    org: str
    repo: RepoHttp  # the admin's view of the organization's repository
    user_id: str
    client: httpx.Client  # the member's own key

    @property
    def o(self) -> str:
        return f"/organizations/{self.org}"


async def _create_user(server: LocalServer, username: str) -> tuple[str, str]:
    db = Database(sqlite_url(server.data_dir))
    try:
        created = await Identity(db).create_user(username)
    finally:
        await db.dispose()
    return created.principal.id, created.api_key


def new_member(api: httpx.Client, server: LocalServer, unique_name: Callable[..., str]) -> Member:
    org = unique_name("org")
    assert api.post("/organizations", json={"name": org, "display_name": org}).status_code == 201
    assert api.post(f"/organizations/{org}/repositories", json={"name": "data"}).status_code == 201
    user_id, key = asyncio.run(_create_user(server, unique_name("user")))
    joined = api.post(f"/organizations/{org}/members", json={"user_id": user_id})
    assert joined.status_code == 201, joined.text
    client = httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0
    )
    return Member(org, RepoHttp(api, f"{org}/data"), user_id, client)
