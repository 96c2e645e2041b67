"""The audit log through the SDK against the real server (``org.audit_log.list``: filters,
paging, ``total``, the chain verifying offline), and ``client.paginate_offset`` on the audit
route and, through a scripted transport, on a route with prefixed parameter names."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from lamina import AsyncClient, AsyncRepository, AuditEntry, SerializationError
from lamina.audit import verify_entries
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


async def commit_three(repo: AsyncRepository) -> None:
    for index in range(3):
        async with repo.session() as session:
            await session.objects.put(f"{repo.name}/{index}.txt", b"x")
            await session.commit(f"change {index}")


async def test_filters_paging_and_total(client: AsyncClient, repo: AsyncRepository) -> None:
    await commit_three(repo)
    log = client.organization(repo.org).audit_log
    pager = log.list(resource_kind="repository", resource_id=repo.name, page_size=2)
    pages = [page.items async for page in pager.pages()]
    assert [len(items) for items in pages] == [2, 1]
    assert pager.total == 3
    sessions = [entry for items in pages for entry in items]
    assert all(isinstance(entry, AuditEntry) for entry in sessions)
    assert [(e.action, e.outcome, e.resource) for e in sessions] == [
        ("CreateSession", "success", repo.path)
    ] * 3
    assert [e.seq for e in sessions] == sorted(e.seq for e in sessions)  # oldest first

    principal = sessions[0].principal_id
    commits = log.list(action="CommitSession", principal=principal)
    mine = [e async for e in commits if e.resource == repo.path]
    assert [(e.resource_kind, e.principal_id) for e in mine] == [("session", principal)] * 3
    puts = log.list(action="PutObject", resource_id=f"{repo.name}/1.txt", outcome="success")
    assert [e.resource async for e in puts] == [repo.path]
    assert [e async for e in log.list(resource_id=repo.name, outcome="denied")] == []
    assert [e async for e in log.list(resource_id=repo.name, amount=1)] == sessions[:1]

    first, second = sessions[0], sessions[1]
    since = log.list(resource_kind="repository", resource_id=repo.name, since=second.time)
    assert [e.seq async for e in since] == [second.seq, sessions[2].seq]
    until = log.list(resource_kind="repository", resource_id=repo.name, until=second.created_at)
    assert [e.seq async for e in until] == [first.seq]
    later = log.list(resource_id=repo.name, since=sessions[2].time + timedelta(seconds=1))
    assert [e async for e in later] == []


async def test_the_whole_log_verifies_offline(client: AsyncClient, repo: AsyncRepository) -> None:
    await commit_three(repo)
    entries = [e async for e in client.organization(repo.org).audit_log.list(page_size=500)]
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert verify_entries(entries) is None


async def test_paginate_offset_on_the_audit_route(
    client: AsyncClient, repo: AsyncRepository, local_server: LocalServer
) -> None:
    await commit_three(repo)
    path = f"/organizations/{repo.org}/audit-log"
    pager = client.paginate_offset(
        path, params={"resource_kind": "repository", "resource_id": repo.name}, page_size=1
    )
    raw = [item async for item in pager]
    assert [item["action"] for item in raw] == ["CreateSession"] * 3
    assert pager.total == 3
    origin = client.paginate_offset(
        f"/api/v1{path}", params={"resource_id": repo.name}, model=AuditEntry
    )
    assert [e.id async for e in origin] == [item["id"] for item in raw]
    with pytest.raises(SerializationError, match="'entries'"):
        await client.paginate_offset(path, items_key="entries").__anext__()


def usage_route(requests: list[httpx.URL]) -> httpx.MockTransport:
    """``/api/v2/usage/summary`` with prefixed parameters: 5 packs, no ``total``."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request.url)
        if request.url.path != "/api/v2/usage/summary":
            return httpx.Response(404, json={"message": "no route"})
        limit = int(request.url.params["evidence_limit"])
        offset = int(request.url.params["evidence_offset"])
        packs = [{"id": f"p{i}"} for i in range(5)][offset : offset + limit]
        return httpx.Response(200, json={"evidence_packs": packs, "objects": 7})

    return httpx.MockTransport(handle)


async def test_paginate_offset_with_prefixed_params_on_another_api_version() -> None:
    requests: list[httpx.URL] = []
    async with AsyncClient(
        api_key="tuk-test",
        endpoint_url="http://lamina.invalid",
        http_client=httpx.AsyncClient(transport=usage_route(requests)),
    ) as client:
        pager = client.paginate_offset(
            "/api/v2/usage/summary",
            params={"window": "30d", "ignored": None},
            limit_param="evidence_limit",
            offset_param="evidence_offset",
            items_key="evidence_packs",
            page_size=2,
        )
        assert [pack["id"] async for pack in pager] == ["p0", "p1", "p2", "p3", "p4"]
    assert pager.total is None
    assert [str(url) for url in requests] == [
        f"http://lamina.invalid/api/v2/usage/summary?window=30d&evidence_limit=2&evidence_offset={o}"
        for o in (0, 2, 4)
    ]
