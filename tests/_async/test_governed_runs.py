"""Governed runs through the SDK against the real server: ABPs created, deployed and invoked
with ``org.abps``, their runs read and waited for with ``org.runs``, a held run approved by a
second principal, its evidence exported and verified offline, the facade's ``{"detail"}``
errors mapped to the SDK's typed errors, and ``org.usage``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lamina import (
    AsyncClient,
    AsyncOrganization,
    AsyncRepository,
    ConflictError,
    EvidenceExport,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvokeResult,
    NotFoundError,
    RunTimeoutError,
    UnprocessableEntityError,
)
from lamina._concurrency import asleep
from lamina.evidence import verify
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio

#: What an approver may do: decide held changes, nothing else.
APPROVER_POLICY = "ApproveSession()\nGetSession()\n"
#: The ABP's command: the payload it was given, written into the repository.
COPY_PAYLOAD = "cat /lamina/input/payload.json > /sandbox/payload.json"


@pytest.fixture(autouse=True)
def _needs_sandboxes(sandbox_routes: None) -> None:
    """Skipped where sandboxes cannot run (they need root and bubblewrap)."""
    from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner

    cannot_run = BubblewrapRunner().check()
    if cannot_run is not None:
        pytest.skip(f"no sandboxes: {cannot_run}")


@pytest.fixture
def org(client: AsyncClient, repo: AsyncRepository) -> AsyncOrganization:
    return client.organization(repo.org)


@pytest.fixture
async def approver(
    org: AsyncOrganization, local_server: LocalServer, unique_name: Callable[..., str]
) -> AsyncIterator[AsyncClient]:
    """A client of a second principal (an agent) that may approve held changes."""
    agent = await org.agents.create(unique_name("approver"), inline_policy=APPROVER_POLICY)
    key = await agent.api_keys.create("approve")
    async with AsyncClient(api_key=key.token, endpoint_url=local_server.endpoint_url) as client:
        yield client


async def read_at_head(repo: AsyncRepository, path: str) -> bytes:
    async with repo.objects.get(path) as reader:
        return await reader.read()


async def settled(org: AsyncOrganization, result: InvokeResult) -> InvokeResult:
    """The invocation once its run ended or was held (the server answers after 20 s even
    when it is still going)."""
    for _ in range(600):
        if result.outcome != "running":
            return result
        await asleep(0.1)
        result = await org.runs.get(result.invocation_id)
    raise AssertionError(f"run {result.invocation_id} is still running")


async def pack_of(org: AsyncOrganization, run_id: str) -> str:
    """The id of the evidence pack the run's end made, once it is there."""
    for _ in range(600):
        pack_id = (await org.runs.get(run_id)).evidence_pack_id
        if pack_id is not None:
            return pack_id
        await asleep(0.05)
    raise AssertionError(f"no evidence pack for run {run_id}")


async def download(client: AsyncClient, export: EvidenceExport, path: Path) -> Path:
    response = await client.get(export.download_url, authenticated=False)
    path.write_bytes(response.content)
    return path


async def test_a_deployed_abp_runs_governed_and_its_commit_lands(
    org: AsyncOrganization, repo: AsyncRepository, unique_name: Callable[..., str]
) -> None:
    abp = await org.abps.create(
        unique_name("copy"), repository=repo.path, command=COPY_PAYLOAD, description="copies"
    )
    assert (abp.status, abp.repository, abp.requires_approval) == ("draft", repo.path, False)
    assert abp.command == ["sh", "-c", COPY_PAYLOAD]
    with pytest.raises(ConflictError, match="not deployed"):
        await org.abps.invoke(abp.id, {"n": 1})
    assert (await org.abps.deploy(abp.id)).status == "deployed"

    result = await org.abps.invoke(abp.id, {"n": 1, "who": "ü"})
    assert result.outcome in ("completed", "running"), result
    run = await org.runs.wait(result.invocation_id, timeout=60, poll_interval=0.1)
    assert (run.status, run.outcome, run.is_allowed, run.requires_human) == (
        "succeeded",
        "completed",
        True,
        False,
    )
    assert run.run_id == result.invocation_id and run.abp_id == abp.id
    assert run.output is not None and run.output.exit_code == 0 and run.output.commit_id
    assert await read_at_head(repo, "payload.json") == '{"n":1,"who":"ü"}'.encode()
    assert [commit.id async for commit in repo.commits.list(amount=1)] == [run.output.commit_id]

    assert (await org.abps.get(abp.id)).status == "deployed"
    assert abp.id in [listed.id async for listed in org.abps.list(page_size=1)]
    listed = org.runs.list(abp_id=abp.id)
    assert [found.run_id async for found in listed] == [run.run_id]
    assert listed.total == 1

    assert (await org.abps.undeploy(abp.id)).status == "undeployed"
    with pytest.raises(ConflictError) as caught:
        await org.abps.invoke(abp.id, {})
    assert caught.value.message == f"ABP {abp.id!r} is undeployed, not deployed: deploy it first"


async def test_a_held_run_waits_for_a_second_principal_and_its_evidence_verifies(
    client: AsyncClient,
    org: AsyncOrganization,
    repo: AsyncRepository,
    approver: AsyncClient,
    unique_name: Callable[..., str],
    tmp_path: Path,
) -> None:
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    abp = await org.abps.create(
        unique_name("held"), repository=repo.path, command=COPY_PAYLOAD, requires_approval=True
    )
    await org.abps.deploy(abp.id)
    result = await settled(org, await org.abps.invoke(abp.id, {"ticket": "T-7"}))
    assert (result.outcome, result.requires_human, result.withheld) == (
        "requires_approval",
        True,
        True,
    )
    assert result.approval_id and result.output is not None and result.output.web_url
    assert {"kind": "approval", "required": True} in result.aggregated_conditions
    with pytest.raises(RunTimeoutError) as timed_out:
        await org.runs.wait(result.invocation_id, timeout=0.2, poll_interval=0.05)
    assert timed_out.value.run.status == "awaiting_approval"
    assert timed_out.value.run_id == result.invocation_id
    assert [entry.path async for entry in repo.objects.list()] == []  # nothing landed yet

    commit_id = await approver.repository(repo.path).approvals.approve(result.approval_id)
    run = await org.runs.wait(result.invocation_id, timeout=60, poll_interval=0.1)
    assert run.status == "succeeded"
    assert await read_at_head(repo, "payload.json") == b'{"ticket":"T-7"}'
    assert [commit.id async for commit in repo.commits.list(amount=1)] == [commit_id]

    key = await client.evidence_public_key()
    export = await org.runs.evidence(abp.id, run.run_id)
    assert (export.format, export.artifact_kind) == ("zip", "evidence_pack")
    report = verify(
        await download(client, export, tmp_path / "run.zip"), public_key=key.public_key_pem
    )
    assert report.ok, report.problems
    assert len(report.packs) == 1

    package = await org.runs.evidence_package(abp.id, since=started)
    everything = verify(
        await download(client, package, tmp_path / "abp.zip"), public_key=key.public_key_pem
    )
    assert everything.ok, everything.problems
    assert report.packs[0] in everything.packs


async def test_facade_errors_are_the_sdks_typed_errors_with_the_servers_detail(
    client: AsyncClient,
    org: AsyncOrganization,
    repo: AsyncRepository,
    unique_name: Callable[..., str],
) -> None:
    with pytest.raises(UnprocessableEntityError) as invalid:
        await org.abps.create(
            unique_name("a"), repository=repo.path, command="true", timeout_seconds=0
        )
    assert invalid.value.message.startswith("body.timeout_seconds: ")
    with pytest.raises(UnprocessableEntityError) as elsewhere:
        await org.abps.create(unique_name("a"), repository="other-org/data", command="true")
    assert elsewhere.value.message.startswith("repository: must be 'organization/repository'")
    with pytest.raises(NotFoundError, match="no-such-abp"):
        await org.abps.get("no-such-abp")
    with pytest.raises(NotFoundError, match="no-such-run"):
        await org.runs.get("no-such-run")
    with pytest.raises(NotFoundError, match="organization 'no-such-org' not found"):
        await client.organization("no-such-org").abps.get("any")

    abp = await org.abps.create(unique_name("big"), repository=repo.path, command="true")
    await org.abps.deploy(abp.id)
    with pytest.raises(UnprocessableEntityError, match="payload: at most 65536 bytes"):
        await org.abps.invoke(abp.id, {"blob": "x" * 70_000})
    with pytest.raises(InvalidArgumentTypeError):
        await org.abps.invoke(abp.id, ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await org.abps.invoke(abp.id, {"when": datetime.now(timezone.utc)})
    assert [run async for run in org.runs.list(abp_id=abp.id)] == []  # nothing was invoked


async def test_usage_counts_the_run_and_walks_the_evidence_packs(
    org: AsyncOrganization, repo: AsyncRepository, unique_name: Callable[..., str]
) -> None:
    before = await org.usage.summary()
    abp = await org.abps.create(unique_name("count"), repository=repo.path, command=COPY_PAYLOAD)
    await org.abps.deploy(abp.id)
    result = await org.abps.invoke(abp.id, {"n": 2})
    run = await org.runs.wait(result.invocation_id, timeout=60, poll_interval=0.1)
    assert run.outcome == "completed"
    pack_id = await pack_of(org, run.run_id)

    after = await org.usage.summary()
    assert (after.organization, after.tenant_id) == (org.name, before.tenant_id)
    assert after.governed_runs.total == before.governed_runs.total + 1
    completed = after.governed_runs.by_outcome.get("completed", 0)
    assert completed == before.governed_runs.by_outcome.get("completed", 0) + 1
    assert after.sandbox_runs == before.sandbox_runs + 1
    assert after.commits == before.commits + 1
    assert after.objects.count == before.objects.count + 1
    assert after.evidence_packs_page.total > before.evidence_packs_page.total

    packs = org.usage.evidence_packs(page_size=3)
    walked = [pack async for pack in packs]
    assert len(walked) == after.evidence_packs_page.total
    assert len({pack.id for pack in walked}) == len(walked)
    assert pack_id in [pack.id for pack in walked]
    assert walked[: len(after.evidence_packs)] == after.evidence_packs
    assert [pack.id async for pack in org.usage.evidence_packs(amount=2)] == [
        pack.id for pack in walked[:2]
    ]
