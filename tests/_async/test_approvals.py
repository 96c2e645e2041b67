"""Approvals through the SDK against the real server: a repository whose rule holds an agent's
commits, the agent's session waiting (``commit_result``, ``block_for_approval``), and the
admin deciding it with ``repo.approvals`` (list, get, changes, approve, reject)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lamina import (
    ApprovalRejectedError,
    ApprovalTimeoutError,
    AsyncClient,
    AsyncRepository,
    AsyncSession,
    ConflictError,
    ForbiddenError,
)
from lamina._concurrency import agather_bounded, asleep
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio

AGENT_POLICY = (
    "CreateSession()\nGetSession()\nPutObject()\nCommitSession()\nRollbackSession()\n"
    "ListObjects()\nGetObject()\n"
)


@pytest.fixture
def agent_key(api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]) -> str:
    """The API key of a new agent of the bootstrap organization that may write through
    sessions but not approve."""
    org = f"/organizations/{local_server.org}"
    name = unique_name("agent")
    created = api.post(
        f"{org}/agents", json={"name": name, "description": "", "inline_policy": AGENT_POLICY}
    )
    assert created.status_code == 201, created.text
    key = api.post(f"{org}/agents/{name}/auth/keys", json={"name": "k", "description": ""})
    assert key.status_code == 201, key.text
    token: str = key.json()["token"]
    return token


@pytest.fixture
async def agent(local_server: LocalServer, agent_key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_key=agent_key, endpoint_url=local_server.endpoint_url) as client:
        yield client


@pytest.fixture
async def held(repo: AsyncRepository) -> AsyncRepository:
    """The fresh repository, with a rule that holds agents' commits (the admin's handle)."""
    await repo.update(approval_required_for="agents")
    return repo


async def staged(agent: AsyncClient, repo: AsyncRepository, path: str) -> AsyncSession:
    """An agent's session on ``repo`` with ``path`` staged."""
    session = await agent.repository(repo.path).session()
    await session.objects.put(path, b"payload of " + path.encode())
    return session


async def paths_at_head(repo: AsyncRepository) -> list[str]:
    return [entry.path async for entry in repo.objects.list()]


async def pending_session(repo: AsyncRepository) -> str:
    """The id of the first session waiting for approval, once there is one."""
    for _ in range(600):
        async for approval in repo.approvals.list(state="pending"):
            return approval.session_id
        await asleep(0.05)
    raise AssertionError("no session became pending")


async def test_settings_carry_the_approval_rule(
    client: AsyncClient, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    repos = client.organization(local_server.org).repositories
    repo = await repos.create(
        unique_name("repo"), approval_required_for="all", approval_paths=["secure/"]
    )
    assert (repo.approval_required_for, repo.approval_paths) == ("all", ("secure/",))
    await repo.update(approval_required_for="agents", approval_paths=[])
    assert (repo.approval_required_for, repo.approval_paths) == ("agents", ())
    reloaded = await client.repository(repo.path).refresh()
    assert (reloaded.approval_required_for, reloaded.approval_paths) == ("agents", ())
    await repo.delete()


async def test_a_held_commit_is_reviewed_and_approved(
    agent: AsyncClient, held: AsyncRepository
) -> None:
    session = await staged(agent, held, "reports/q3.csv")
    result = await session.commit_result("quarterly numbers", {"source": "agent"})
    sid = session.session_id
    assert (result.status, result.commit_id, result.session_id) == ("approval_required", None, sid)
    assert result.web_url is not None and result.web_url.endswith(f"/approvals/{held.path}/{sid}")
    assert result.api_url is not None and result.api_url.endswith(f"/sessions/{sid}/approve")

    approval = await held.approvals.get(sid)
    assert (approval.state, approval.message, approval.metadata) == (
        "pending",
        "quarterly numbers",
        {"source": "agent"},
    )
    assert approval.requested_by is not None and approval.requested_by.type == "agent"
    assert approval.web_url == result.web_url and approval.requested_at is not None
    changes = [change.path async for change in held.approvals.changes(sid)]
    assert changes == ["reports/q3.csv"]
    assert await paths_at_head(held) == []

    with pytest.raises(ForbiddenError) as denied:
        await agent.repository(held.path).approvals.approve(sid)
    assert denied.value.action == "ApproveSession"

    commit_id = await held.approvals.approve(sid, metadata={"ticket": "T-1"})
    decided = await held.approvals.get(sid)
    assert (decided.state, decided.commit_id) == ("approved", commit_id)
    assert decided.decided_by is not None and decided.decided_at is not None
    commit = await held.commits.get(commit_id)
    assert commit.message == "quarterly numbers"
    assert await paths_at_head(held) == ["reports/q3.csv"]
    with pytest.raises(ConflictError):
        await held.approvals.approve(sid)


@pytest.mark.filterwarnings("ignore:Approval required")
async def test_block_for_approval_returns_the_commit_another_principal_approved(
    agent: AsyncClient, held: AsyncRepository
) -> None:
    session = await staged(agent, held, "approved.txt")
    approved: list[str] = []

    async def commit() -> str | None:
        return await session.commit("wait for me", timeout=60, poll_interval=0.05)

    async def approve_later() -> None:
        sid = await pending_session(held)
        await asleep(0.1)
        approved.append(await held.approvals.approve(sid))

    committed, _ = await agather_bounded([commit, approve_later], 2)
    assert committed == approved[0]
    assert (await held.approvals.get(session.session_id)).commit_id == committed
    assert await paths_at_head(held) == ["approved.txt"]


@pytest.mark.filterwarnings("ignore:Approval required")
async def test_block_for_approval_raises_when_rejected(
    agent: AsyncClient, held: AsyncRepository
) -> None:
    session = await staged(agent, held, "rejected.txt")

    async def commit() -> str | None:
        return await session.commit("wait for me", timeout=60, poll_interval=0.05)

    async def reject_later() -> None:
        await held.approvals.reject(await pending_session(held), reason="not now")

    with pytest.raises(ApprovalRejectedError) as caught:
        await agather_bounded([commit, reject_later], 2)
    error = caught.value
    assert (error.session_id, error.state, error.reason) == (
        session.session_id,
        "rejected",
        "not now",
    )
    assert error.decided_by is not None and error.decided_by.type == "user"
    assert "not now" in str(error)
    assert await paths_at_head(held) == []


async def test_block_for_approval_times_out(agent: AsyncClient, held: AsyncRepository) -> None:
    session = await staged(agent, held, "slow.txt")
    with (
        pytest.warns(UserWarning, match="Approval required"),
        pytest.raises(ApprovalTimeoutError) as caught,
    ):
        await session.commit("nobody looks", timeout=0.3, poll_interval=0.05)
    assert caught.value.session_id == session.session_id
    assert caught.value.web_url.endswith(f"/{session.session_id}")
    assert (await held.approvals.get(session.session_id)).state == "pending"
    later = await staged(agent, held, "later.txt")
    with pytest.warns(UserWarning):
        assert await later.commit("later", block_for_approval=False) is None


async def test_list_pages_and_filters_by_state(agent: AsyncClient, held: AsyncRepository) -> None:
    sids = []
    for index in range(3):
        session = await staged(agent, held, f"f{index}.txt")
        assert (await session.commit_result(f"change {index}")).status == "approval_required"
        sids.append(session.session_id)

    pager = held.approvals.list(page_size=2)
    assert pager.total is None
    pages = [[approval.session_id for approval in page.items] async for page in pager.pages()]
    assert pages == [sids[::-1][:2], sids[::-1][2:]]  # newest first
    assert pager.total == 3

    rejected = await held.approvals.reject(sids[0], reason="no")
    assert (rejected.state, rejected.reason, rejected.commit_id) == ("rejected", "no", None)
    with pytest.raises(ConflictError):
        await held.approvals.reject(sids[0])
    pending = held.approvals.list(state="pending")
    assert sorted([approval.session_id async for approval in pending]) == sorted(sids[1:])
    assert pending.total == 2
    assert [a.session_id async for a in held.approvals.list(state="rejected")] == [sids[0]]
    assert [a.session_id async for a in held.approvals.list(amount=1)] == [sids[2]]
