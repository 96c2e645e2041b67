"""Evidence packs through the SDK against the real server: a shell's run leaves a pack, which
lists, loads, exports and downloads, and the bundle verifies offline against the key the
client fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina import AsyncClient, AsyncRepository, EvidencePackSummary, NotFoundError
from lamina._concurrency import asleep
from lamina.evidence import verify

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _needs_sandbox_routes(sandbox_routes: None) -> None:
    """Skipped while the server has no sandbox routes."""


async def pack_of(repo: AsyncRepository, sandbox_id: str) -> EvidencePackSummary:
    """The pack of a sandbox, made just after it ended."""
    for _ in range(600):
        found = [pack async for pack in repo.evidence.list(subject_id=sandbox_id)]
        if found:
            return found[0]
        await asleep(0.05)
    raise AssertionError(f"no evidence pack for sandbox {sandbox_id}")


async def test_a_shell_run_leaves_a_pack_that_verifies_offline(
    client: AsyncClient, repo: AsyncRepository, tmp_path: Path
) -> None:
    async with repo.shell() as sh:
        await sh.run("echo evidence > /sandbox/out.txt", check=True)
    summary = await pack_of(repo, sh.sandbox.id)
    assert (summary.kind, summary.commit_id) == ("sandbox_run", sh.outcome.commit_id)

    pack = await repo.evidence.get(summary.id)
    assert pack.chain_hash == summary.chain_hash == pack.document["chain_hash"]
    export = await repo.evidence.export(summary.id)
    assert export.download_url.startswith("http") and export.expires_at is not None

    key = await client.evidence_public_key()
    assert key.key_id == pack.key_id
    bundle = await repo.evidence.download(summary.id, tmp_path / "pack.zip")
    report = verify(bundle, public_key=key.public_key_pem)
    assert report.ok, report.problems
    assert report.packs == (summary.id,)

    org = client.organization(repo.org)
    everything = await org.evidence.download(tmp_path / "org.zip", repository=repo.name)
    assert summary.id in verify(everything, public_key=key.public_key_pem).packs


async def test_an_unknown_pack_is_not_found(repo: AsyncRepository) -> None:
    with pytest.raises(NotFoundError):
        await repo.evidence.get("no-such-pack")
    assert [pack async for pack in repo.evidence.list()] == []
