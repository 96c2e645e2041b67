"""The secrets service on a real database: scopes (repository and agent) kept apart, updates,
purges, and the sandbox environment built from what it stores."""

from __future__ import annotations

import pytest

from lamina_server.principals import Principal
from lamina_server.sandboxes.environment import StoredSecrets, sandbox_environment
from lamina_server.sandboxes.models import RunAs
from lamina_server.secrets import (
    Sealer,
    SecretNotFound,
    Secrets,
    SecretScope,
    SecretUnreadable,
)
from lamina_server.storage.db import Database

pytestmark = pytest.mark.anyio

ALICE = Principal("user", "00000000-0000-4000-8000-00000000a11c", "alice")
BOT = Principal("agent", "00000000-0000-4000-8000-0000000000b0", "bot")
SAME_ID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def store(db: Database) -> Secrets:
    return Secrets(db, Sealer(bytes(range(32))))


async def test_repository_and_agent_scopes_are_apart(store: Secrets) -> None:
    repo, agent = SecretScope.repository(SAME_ID), SecretScope.agent(SAME_ID)
    await store.put(repo, "TOKEN", "repository", author=ALICE)
    await store.put(agent, "TOKEN", "agent", author=BOT)
    assert await store.get(repo, "TOKEN") == "repository"
    assert await store.get(agent, "TOKEN") == "agent"
    assert [(e.key, e.created_by_type, e.created_by) for e in await store.list(agent)] == [
        ("TOKEN", "agent", BOT.id)
    ]
    await store.delete(agent, "TOKEN")
    with pytest.raises(SecretNotFound):
        await store.get(agent, "TOKEN")
    assert await store.values(repo) == {"TOKEN": "repository"}


async def test_an_update_keeps_the_creator(store: Secrets) -> None:
    scope = SecretScope.repository(SAME_ID)
    await store.put(scope, "K", "one", author=ALICE)
    (before,) = await store.list(scope)
    await store.put(scope, "K", "two", author=BOT)
    (after,) = await store.list(scope)
    assert (after.created_by, after.created_at) == (ALICE.id, before.created_at)
    assert after.updated_at > before.updated_at
    assert await store.get(scope, "K") == "two"


async def test_purge_removes_one_scope_only(store: Secrets) -> None:
    gone, kept = SecretScope.repository(SAME_ID), SecretScope.agent(SAME_ID)
    await store.put(gone, "A", "a", author=ALICE)
    await store.put(gone, "B", "b", author=ALICE)
    await store.put(kept, "A", "a", author=ALICE)
    await store.purge(gone)
    assert await store.list(gone) == []
    assert await store.values(kept) == {"A": "a"}


async def test_another_key_reads_nothing(db: Database, store: Secrets) -> None:
    scope = SecretScope.repository(SAME_ID)
    await store.put(scope, "K", "v", author=ALICE)
    stranger = Secrets(db, Sealer(bytes(32)))
    with pytest.raises(SecretUnreadable):
        await stranger.get(scope, "K")
    with pytest.raises(SecretUnreadable):
        await stranger.values(scope)


async def test_a_sandbox_environment_layers_the_stored_secrets(store: Secrets) -> None:
    await store.put(SecretScope.repository("repo-1"), "LAYER", "repository", author=ALICE)
    await store.put(SecretScope.repository("repo-1"), "REPO_ONLY", "r", author=ALICE)
    await store.put(SecretScope.agent("agent-1"), "LAYER", "agent", author=ALICE)
    await store.put(SecretScope.agent("agent-1"), "REQUEST", "agent", author=ALICE)
    source = StoredSecrets(store)

    async def environment(run_as: RunAs | None) -> dict[str, str]:
        return await sandbox_environment(
            source,
            image_env={"LAYER": "image", "PATH": "/bin"},
            repository_id="repo-1",
            run_as=run_as,
            request_env={"REQUEST": "request"},
        )

    assert await environment(RunAs("agent", "agent-1")) == {
        "LAYER": "agent",
        "PATH": "/bin",
        "REPO_ONLY": "r",
        "REQUEST": "request",
    }
    assert (await environment(None))["LAYER"] == "repository"
    assert (await environment(RunAs("role", "agent-1")))["LAYER"] == "repository"
