"""The audit log against the real server: every route family that changes state leaves an
entry (and a denial leaves one), the list filters and pages, ``lamina server audit verify``
passes and then names a hand-corrupted or removed entry, and a SIGKILL in a burst of commits
never leaves a commit without its entry or an entry without its commit."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.cli import main as server_main
from tests import postgres
from tests.conftest import RepoHttp
from tests.server.members import Member
from tests.server.sandbox_wire import Sandboxes
from tests.server.test_evidence import needs_sandboxes
from tests.server.test_sandbox_triggers import create as create_trigger


def _log(api: httpx.Client, org: str, **filters: Any) -> dict[str, Any]:
    response = api.get(f"/organizations/{org}/audit-log", params=filters)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_route_family_that_changes_state_is_audited(
    api: httpx.Client, member: Member
) -> None:
    o, repo = member.o, member.repo
    session = repo.session()
    repo.put(session, "a.txt", b"a")
    copied = api.post(
        f"{repo.base}/object/copy",
        params={"session_id": session, "source_path": "a.txt", "destination_path": "b.txt"},
    )
    assert copied.status_code == 201, copied.text
    repo.delete(session, "b.txt")
    commit = repo.commit(session, "first")
    assert api.post(f"{repo.base}/commits/{commit}/revert", json={}).status_code == 201
    dropped = repo.session()
    assert api.delete(f"{repo.base}/sessions/{dropped}").status_code == 204
    assert api.put(f"{o}/repositories/data", json={"description": "d"}).status_code == 200
    assert api.post(f"{o}/repositories", json={"name": "gone"}).status_code == 201
    assert api.delete(f"{o}/repositories/gone").status_code == 204
    assert api.post(f"{o}/groups", json={"name": "team"}).status_code == 201
    assert api.post(f"{o}/agents", json={"name": "bot", "description": ""}).status_code == 201
    assert api.put(f"{repo.base}/secrets/TOKEN", json={"value": "s3cret"}).status_code in (
        200,
        201,
    )
    policy = api.post(f"{o}/policies", json={"name": "p", "policy_text": "GetObject()\n"})
    assert policy.status_code == 201, policy.text
    trigger = create_trigger(repo)
    assert api.delete(f"{repo.base}/sandbox-triggers/{trigger['id']}").status_code == 204
    assert api.delete(f"{o}/members/{member.user_id}").status_code == 204

    entries = _log(api, member.org)["items"]
    actions = {(e["action"], e["resource_kind"]) for e in entries}
    assert {
        ("CreateRepository", "organization"),
        ("CreateSession", "repository"),
        ("PutObject", "object"),
        ("DeleteObject", "object"),
        ("CommitSession", "session"),
        ("RevertCommit", "commit"),
        ("RollbackSession", "session"),
        ("UpdateRepository", "repository"),
        ("DeleteRepository", "repository"),
        ("ManageGroups", "organization"),
        ("ManageAgents", "organization"),
        ("ManageSecrets", "secret"),
        ("ManageMembers", "user"),
        ("ManagePolicies", "organization"),
        ("ManageSandboxTriggers", "repository"),
        ("ManageSandboxTriggers", "trigger"),
    } <= actions, actions
    assert all(e["outcome"] == "success" for e in entries)
    committed = next(e for e in entries if e["action"] == "CommitSession")
    assert committed["details"]["commit_id"] == commit
    assert committed["resource_id"] == session
    # Who, from where, with which request: every entry says.
    for entry in entries:
        assert entry["principal_type"] == "user" and entry["principal_name"]
        assert entry["client_address"] == "127.0.0.1"
        assert entry["request_id"]
    # A secret's value is never in the log.
    assert "s3cret" not in str(entries)
    # Reads are not audited.
    assert not {e["action"] for e in entries} & {"ListObjects", "GetObject", "GetRepository"}


def test_the_log_filters_and_pages_and_records_denials(api: httpx.Client, member: Member) -> None:
    repo = member.repo
    for _ in range(3):
        repo.commit(repo.session())
    # The member may not manage groups: refused, and the refusal is in the log.
    refused = member.client.post(f"{member.o}/groups", json={"name": "nope"})
    assert refused.status_code == 403
    denied = _log(api, member.org, outcome="denied")["items"]
    assert [(e["action"], e["principal_id"]) for e in denied] == [("ManageGroups", member.user_id)]
    assert denied[0]["request_id"] == refused.json()["request_id"]
    assert "ManageGroups" in denied[0]["details"]["reason"] or denied[0]["details"]["reason"]

    commits = _log(api, member.org, action="CommitSession")
    assert commits["total"] == 3
    ids = [uuid.UUID(entry["id"]) for entry in _log(api, member.org)["items"]]
    assert len(set(ids)) == len(ids) > 3 and {i.version for i in ids} == {4}
    page = _log(api, member.org, action="CommitSession", limit=2, offset=2)
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (3, 1, 2, 2)
    assert _log(api, member.org, principal=member.user_id)["total"] == 1
    first = commits["items"][0]
    assert _log(api, member.org, since=first["created_at"])["total"] >= 3
    assert _log(api, member.org, until=first["created_at"], action="CommitSession")["total"] == 0
    bad = api.get(f"/organizations/{member.org}/audit-log", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["message"]
    # A member without ReadAuditLog may not read it.
    assert member.client.get(f"{member.o}/audit-log").status_code == 403


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(data_dir=tmp_path / "data") as started:
        created = httpx.post(
            f"{started.endpoint_url}/api/v1/organizations/{started.org}/repositories",
            headers={"Authorization": f"Bearer {started.api_key}"},
            json={"name": "audited"},
        )
        assert created.status_code == 201, created.text
        yield started


def _verify(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = server_main(["audit", "verify", *postgres.data_args(server)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_audit_verify_names_the_first_broken_entry(
    own_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(
        base_url=f"{own_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {own_server.api_key}"},
    ) as api:
        repo = RepoHttp(api, f"{own_server.org}/audited")
        for _ in range(4):
            repo.commit(repo.session())
        entries = _log(api, own_server.org)["items"]
    code, output = _verify(own_server, capsys)
    assert code == 0 and "ok:" in output, output

    data_dir = own_server.data_dir
    target = entries[3]
    postgres.execute(
        data_dir,
        "UPDATE audit_entries SET principal_name = 'mallory' WHERE id = :id",
        id=target["id"],
    )
    code, output = _verify(own_server, capsys)
    assert code == 1
    assert f"entry {target['seq']} ({target['id']})" in output and "altered" in output

    postgres.execute(  # put it back; then remove one in the middle
        data_dir,
        "UPDATE audit_entries SET principal_name = :name WHERE id = :id",
        name=target["principal_name"],
        id=target["id"],
    )
    assert _verify(own_server, capsys)[0] == 0
    postgres.execute(data_dir, "DELETE FROM audit_entries WHERE id = :id", id=entries[1]["id"])
    code, output = _verify(own_server, capsys)
    assert code == 1 and f"entry {entries[1]['seq']} is missing" in output, output


def test_a_crash_in_a_burst_of_commits_keeps_commits_and_entries_together(
    own_server: LocalServer,
) -> None:
    base = f"{own_server.endpoint_url}/api/v1"
    headers = {"Authorization": f"Bearer {own_server.api_key}"}
    path = f"/organizations/{own_server.org}/repositories/audited"
    stop = threading.Event()

    def commit_forever() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
            while not stop.is_set():
                try:
                    session = api.post(f"{path}/sessions").json()["session_id"]
                    api.post(f"{path}/sessions/{session}", json={"message": "burst"})
                except (httpx.HTTPError, ValueError, KeyError):
                    return

    workers = [threading.Thread(target=commit_forever, daemon=True) for _ in range(6)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    own_server.kill()
    stop.set()
    for worker in workers:
        worker.join(timeout=15)

    own_server.start()
    with httpx.Client(base_url=base, headers=headers) as api:
        commits: list[str] = []
        after = ""
        while True:
            page = api.get(f"{path}/log", params={"amount": 1000, "after": after}).json()
            commits += [c["id"] for c in page["results"] if c["message"] == "burst"]
            if not page["pagination"]["has_more"]:
                break
            after = page["pagination"]["next_offset"]
        entries: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = _log(api, own_server.org, action="CommitSession", limit=1000, offset=offset)
            entries += body["items"]
            offset += 1000
            if offset >= body["total"]:
                break
    assert len(commits) > 5, "the burst committed too little to mean anything"
    audited = [entry["details"]["commit_id"] for entry in entries]
    assert sorted(audited) == sorted(commits)  # each landed commit once, and nothing else
    code = server_main(["audit", "verify", *postgres.data_args(own_server)])
    assert code == 0


@needs_sandboxes
def test_a_sandbox_run_and_its_exec_sessions_are_audited(
    api: httpx.Client, member: Member, local_server: LocalServer
) -> None:
    boxes = Sandboxes(member.repo, local_server.endpoint_url, local_server.api_key)
    sandbox = boxes.running(mode="service")
    assert boxes.exec(sandbox, "echo hi").stdout == b"hi\n"
    assert boxes.api.post(f"{boxes.base}/{sandbox}/finish").status_code == 202
    boxes.wait(sandbox)
    entries = _log(api, member.org, resource_id=sandbox)["items"]
    assert [(e["action"], e["resource_kind"]) for e in entries][:3] == [
        ("CreateSandbox", "sandbox"),
        ("ExecSandbox", "sandbox"),
        ("FinishSandbox", "sandbox"),
    ]
