"""Sessions against the real server: context manager, explicit control, attach, conflicts."""

from __future__ import annotations

import httpx
import pytest

from lamina import (
    ApprovalTimeoutError,
    AsyncClient,
    AsyncRepository,
    BadRequestError,
    CommitResult,
    ConflictError,
    LaminaError,
    NotFoundError,
)
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


async def paths_at_head(repo: AsyncRepository) -> list[str]:
    return [entry.path async for entry in repo.objects.list()]


async def test_context_manager_commits(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        await session.objects.put("a.txt", b"a")
        commit_id = await session.commit("add a", metadata={"ticket": "T-1"})
    assert commit_id
    commit = await repo.commits.get(commit_id)
    assert commit.message == "add a"
    assert commit.metadata == {"ticket": "T-1"}
    assert await paths_at_head(repo) == ["a.txt"]


async def test_context_manager_rolls_back_without_commit(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        await session.objects.put("dropped.txt", b"x")
    assert await paths_at_head(repo) == []
    with pytest.raises(LaminaError):  # the session is closed on the server
        await session.objects.put("late.txt", b"x")


async def test_context_manager_rolls_back_on_exception(repo: AsyncRepository) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with repo.session() as session:
            await session.objects.put("dropped.txt", b"x")
            raise RuntimeError("boom")
    assert await paths_at_head(repo) == []
    with pytest.raises(BadRequestError, match="already rolled back"):
        await repo.attach(session.session_id).rollback()


async def test_no_rollback_after_commit(repo: AsyncRepository) -> None:
    async with repo.session() as session:
        await session.objects.put("kept.txt", b"x")
        await session.commit("keep")
        # the exit must not roll back a committed session (a rollback would be a 4xx)
    assert await paths_at_head(repo) == ["kept.txt"]


async def test_explicit_session_and_attach_from_another_client(
    repo: AsyncRepository, local_server: LocalServer
) -> None:
    session = await repo.session()
    await session.objects.put("one.txt", b"1")
    async with AsyncClient(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url
    ) as other:
        attached = other.repository(repo.path).attach(session.session_id)
        assert attached.session_id == session.session_id
        async with attached.objects.get("one.txt") as reader:
            assert await reader.read() == b"1"
        await attached.objects.put("two.txt", b"2")
        staged = [record.path async for record in attached.uncommitted()]
        assert staged == ["one.txt", "two.txt"]
        result = await attached.commit_result("from the second client")
    assert isinstance(result, CommitResult)
    assert (result.status, result.session_id) == ("committed", session.session_id)
    assert result.commit_id
    assert await paths_at_head(repo) == ["one.txt", "two.txt"]
    with pytest.raises(LaminaError):
        await session.commit("already committed")


async def test_explicit_rollback(repo: AsyncRepository) -> None:
    session = await repo.session()
    await session.objects.put("gone.txt", b"x")
    await session.rollback()
    assert await paths_at_head(repo) == []


async def test_conflicting_commits_raise_conflict_and_land_nothing(repo: AsyncRepository) -> None:
    async with repo.session() as seed:
        await seed.objects.put("shared.txt", b"base")
        await seed.commit("seed")
    first = await repo.session()
    second = await repo.session()
    await first.objects.put("shared.txt", b"first")
    await second.objects.put("shared.txt", b"second")
    await second.objects.put("other.txt", b"second")
    await first.commit("first wins")
    with pytest.raises(ConflictError) as caught:
        await second.commit("second loses")
    assert caught.value.status_code == 409
    assert "shared.txt" in caught.value.message
    assert await paths_at_head(repo) == ["shared.txt"]
    async with repo.objects.get("shared.txt") as reader:
        assert await reader.read() == b"first"


async def test_non_conflicting_sessions_both_land(repo: AsyncRepository) -> None:
    first = await repo.session()
    second = await repo.session()
    await first.objects.put("a.txt", b"a")
    await second.objects.put("b.txt", b"b")
    await first.commit("a")
    await second.commit("b")
    assert await paths_at_head(repo) == ["a.txt", "b.txt"]


async def test_open_sessions_lists_the_open_ones_page_by_page(
    client: AsyncClient, repo: AsyncRepository
) -> None:
    committed = await repo.session()
    await committed.objects.put("a.txt", b"a")
    await committed.commit("add a")
    rolled_back = await repo.session()
    await rolled_back.rollback()
    opened = sorted([(await repo.session()).session_id for _ in range(3)])
    me = (await client.auth.me()).caller

    listed = [s async for s in repo.open_sessions(page_size=2)]  # two pages

    assert [s.session_id for s in listed] == opened
    assert {(s.state, s.created_by, s.created_by_type) for s in listed} == {
        ("open", me.id, me.type)
    }
    head = [c.id async for c in repo.commits.list(amount=1)]
    assert {s.base_commit for s in listed} == set(head)
    assert [s.session_id async for s in repo.open_sessions(amount=1)] == opened[:1]


async def test_unknown_session_is_not_found(repo: AsyncRepository) -> None:
    ghost = repo.attach("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFoundError):
        await ghost.commit("nothing")


class _ApprovalGate(httpx.AsyncBaseTransport):
    """Fault injection: a server with only the contract's approval routes. This answers the
    commit with the API's 202 and keeps the approval pending for ``pending`` polls; every other
    request reaches the real server, which keeps no approval record of the session (so a
    decided wait ends with the contract's ``""``). Real approvals: ``test_approvals.py``."""

    def __init__(self, pending: int) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self.pending = pending
        self.polls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and "/sessions/" in path and not path.endswith("/approve"):
            return httpx.Response(
                202,
                json={
                    "approval_required": True,
                    "session_id": path.rsplit("/", 1)[-1],
                    "message": "approval required",
                    "api_url": "http://approve.invalid/api",
                    "web_url": "http://approve.invalid/web",
                },
            )
        if request.method == "HEAD" and path.endswith("/approve"):
            self.polls += 1
            if self.polls <= self.pending:
                return httpx.Response(200)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def gated_client(local_server: LocalServer, gate: _ApprovalGate) -> AsyncClient:
    return AsyncClient(
        api_key=local_server.api_key,
        endpoint_url=local_server.endpoint_url,
        http_client=httpx.AsyncClient(transport=gate),
    )


async def test_commit_waits_for_approval(local_server: LocalServer, repository: str) -> None:
    gate = _ApprovalGate(pending=2)
    async with await gated_client(local_server, gate) as client:
        session = await client.repository(repository).session()
        result = await session.commit_result("needs approval")
        assert result == CommitResult(
            status="approval_required",
            web_url="http://approve.invalid/web",
            session_id=session.session_id,
            api_url="http://approve.invalid/api",
        )

        session = await client.repository(repository).session()
        with pytest.warns(UserWarning, match="approve.invalid/web"):
            assert await session.commit("needs approval", poll_interval=0.01) == ""
        assert gate.polls == 3  # 200, 200, then the real server's 404

        session = await client.repository(repository).session()
        with pytest.warns(UserWarning):
            assert await session.commit("later", block_for_approval=False) is None


async def test_commit_approval_timeout(local_server: LocalServer, repository: str) -> None:
    gate = _ApprovalGate(pending=1_000_000)
    async with await gated_client(local_server, gate) as client:
        session = await client.repository(repository).session()
        with pytest.warns(UserWarning), pytest.raises(ApprovalTimeoutError) as caught:
            await session.commit("stuck", timeout=0.2, poll_interval=0.05)
    assert caught.value.web_url == "http://approve.invalid/web"
    assert caught.value.session_id == session.session_id
    assert gate.polls >= 2
