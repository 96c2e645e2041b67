"""The evidence service on its own (no HTTP): the pack of an approved commit, and a bundle whose
objects pass the size cap, each verified offline."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from lamina.evidence import verify
from lamina_server.governance.evidence import EvidenceService
from lamina_server.governance.evidence_format import APPROVED_COMMIT, canonical
from lamina_server.governance.signing_key import SigningKey
from lamina_server.identity import Identity
from lamina_server.repositories import Repositories
from lamina_server.sandboxes.models import SandboxRecord
from lamina_server.storage.blobs import LocalBlobStore
from lamina_server.storage.db import Database
from lamina_server.versioning import Entry, VersionStore

pytestmark = pytest.mark.anyio


class NoSandboxes:
    async def get(self, repository_id: str, sandbox_id: str) -> SandboxRecord:
        raise AssertionError("no sandbox is asked for")

    async def logs(self, repository_id: str, sandbox_id: str) -> AsyncIterator[bytes] | None:
        raise AssertionError("no sandbox is asked for")


class Audit:
    async def entries_for(self, organization_id: str, resource_ids: Any) -> list[dict[str, Any]]:
        entry = {"id": "a1", "prev_hash": "0" * 64, "resource": resource_ids[0]}
        return [{**entry, "hash": hashlib.sha256(canonical(entry)).hexdigest()}]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def setting(db: Database, tmp_path: Path) -> dict[str, Any]:
    identity = Identity(db)
    created = await identity.bootstrap("local")
    assert created is not None
    org = await identity.organization("local")
    repo = await Repositories(db).create(org, "governed", creator=created.principal)
    versions = VersionStore(db)
    committer = created.principal.committer
    await versions.init_repository(repo.id, committer=committer)
    blobs = LocalBlobStore(tmp_path / "blobs")
    session = await versions.create_session(repo.id, created_by=committer)
    for path, data in {"a.txt": b"a" * 10, "b.txt": b"b" * 1000}.items():
        address = blobs.new_address()
        info = await blobs.write(address, _chunks(data))
        address = await blobs.claim(address)  # a small blob's address changes as it is packed
        entry = Entry(address, len(data), info.etag, "text/plain", datetime.now(timezone.utc), {})
        await versions.stage_put(repo.id, session.id, path, entry)
    commit_id = await versions.commit_session(
        repo.id, session.id, message="approved", metadata={}, committer=committer
    )
    return {
        "db": db,
        "versions": versions,
        "blobs": blobs,
        "repo": repo,
        "session_id": session.id,
        "commit_id": commit_id,
    }


def service(setting: dict[str, Any], key: SigningKey, **options: Any) -> EvidenceService:
    return EvidenceService(
        db=setting["db"],
        versions=setting["versions"],
        blobs=setting["blobs"],
        sandboxes=NoSandboxes(),
        key=key,
        audit=Audit(),
        **options,
    )


async def test_an_approved_commit_gets_a_pack_that_verifies(
    setting: dict[str, Any], tmp_path: Path
) -> None:
    key = SigningKey.generate()
    evidence = service(setting, key)
    approval = {"approved_by": "admin", "decision": "approved"}
    pack = await evidence.for_approved_commit(
        repository_id=setting["repo"].id,
        session_id=setting["session_id"],
        commit_id=setting["commit_id"],
        approval=approval,
        decisions=[{"action": "CommitSession", "resource": "local/governed", "allowed": True}],
    )
    assert (pack.kind, pack.subject_id, pack.commit_id) == (
        APPROVED_COMMIT,
        setting["session_id"],
        setting["commit_id"],
    )
    assert await evidence.get(setting["repo"].id, pack.id) == pack
    bundle = tmp_path / "approved.zip"
    with bundle.open("wb") as out:
        await evidence.bundles.write(out, [pack], at=datetime.now(timezone.utc))
    report = verify(bundle, public_key=key.public_key_pem)
    assert report.ok and report.unchecked == (), report.problems


async def test_objects_past_the_cap_are_left_out_and_reported_unchecked(
    setting: dict[str, Any], tmp_path: Path
) -> None:
    key = SigningKey.generate()
    evidence = service(setting, key, object_cap=100)
    pack = await evidence.for_approved_commit(
        repository_id=setting["repo"].id,
        session_id=setting["session_id"],
        commit_id=setting["commit_id"],
        approval={},
    )
    bundle = tmp_path / "capped.zip"
    with bundle.open("wb") as out:
        await evidence.bundles.write(out, [pack], at=datetime.now(timezone.utc))
    report = verify(bundle, public_key=key.public_key_pem)
    assert report.ok, report.problems
    assert report.unchecked == (
        f"pack {pack.id}: object b.txt: not included in the bundle; its content was not checked",
    )
