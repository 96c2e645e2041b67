"""Approvals against the real server: the repository's rule holds an agent's (or any) commit,
the session freezes, a second principal approves (the change lands as its requester's) or
rejects (nothing lands), and every step is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer
from tests.conftest import RepoHttp
from tests.server.members import Member
from tests.server.sandbox_wire import Sandboxes
from tests.server.test_evidence import needs_sandboxes, pack_of

AGENT_POLICY = "CreateSession()\nGetSession()\nPutObject()\nCommitSession()\nRollbackSession()\nListObjects()\n"


@pytest.fixture
def agent(api: httpx.Client, member: Member) -> Iterator[httpx.Client]:
    """An agent of the member's organization that may write through sessions, not approve."""
    created = api.post(
        f"{member.o}/agents",
        json={"name": "writer", "description": "", "inline_policy": AGENT_POLICY},
    )
    assert created.status_code == 201, created.text
    key = api.post(f"{member.o}/agents/writer/auth/keys", json={"name": "k", "description": ""})
    assert key.status_code == 201, key.text
    with httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {key.json()['token']}"}
    ) as client:
        yield client


def _rule(api: httpx.Client, member: Member, rule: str, paths: list[str] | None = None) -> None:
    body: dict[str, Any] = {"approval_required_for": rule}
    if paths is not None:
        body["approval_paths"] = paths
    updated = api.put(f"{member.o}/repositories/data", json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json()["approval_required_for"] == rule


def _held(repo: RepoHttp, path: str, message: str = "needs a look") -> dict[str, Any]:
    session = repo.session()
    repo.put(session, path, b"payload of " + path.encode())
    response = repo.api.post(f"{repo.base}/sessions/{session}", json={"message": message})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["approval_required"] is True and body["session_id"] == session
    return body


def test_an_agents_commit_waits_for_a_humans_approval(
    api: httpx.Client, member: Member, agent: httpx.Client
) -> None:
    _rule(api, member, "agents")
    repo = RepoHttp(agent, f"{member.org}/data")
    held = _held(repo, "reports/q3.csv", "quarterly numbers")
    session = held["session_id"]
    assert held["web_url"].endswith(f"/approvals/{member.org}/data/{session}")
    assert held["api_url"].endswith(f"/repositories/data/sessions/{session}/approve")
    approve = f"{repo.base}/sessions/{session}/approve"

    # Pending: polled by HEAD, reviewed by GET; the session takes nothing more.
    assert agent.head(approve).status_code == 200
    review = api.get(approve).json()
    assert [change["path"] for change in review["results"]] == ["reports/q3.csv"]
    late = agent.put(f"{repo.base}/object", params={"session_id": session, "path": "late.txt"})
    assert late.status_code == 400 and late.json()["code"] == "session_closed"
    assert "reports/q3.csv" not in RepoHttp(api, repo.repository).tree()

    # The agent may not approve its own change; the member's OrgAdmin may.
    denied = agent.post(approve, json={"message": "self"})
    assert denied.status_code == 403 and "ApproveSession" in denied.json()["message"]
    approved = api.post(approve, json={"message": "quarterly numbers"})
    assert approved.status_code == 200, approved.text
    commit = api.get(f"{repo.base}/commits/{approved.json()['commit_id']}").json()
    assert (commit["committer"], commit["committer_type"]) == ("writer", "agent")
    assert commit["metadata"]["lamina.approved_by"].startswith("user:")
    assert "reports/q3.csv" in RepoHttp(api, repo.repository).tree()
    assert agent.head(approve).status_code == 404

    listed = api.get(f"{repo.base}/approvals").json()
    assert listed["total"] == 1
    record = listed["items"][0]
    assert (record["state"], record["commit_id"]) == ("approved", approved.json()["commit_id"])
    assert record["requested_by"]["name"] == "writer"
    assert api.post(approve, json={"message": "again"}).json()["code"] == "approval_decided"

    log = api.get(f"{member.o}/audit-log", params={"resource_id": session}).json()["items"]
    assert [(e["action"], e["outcome"], e["principal_name"]) for e in log] == [
        ("CommitSession", "approval_required", "writer"),
        ("ApproveSession", "approved", record["decided_by"]["name"]),
    ]


def test_a_rejected_change_never_lands(
    api: httpx.Client, member: Member, agent: httpx.Client
) -> None:
    _rule(api, member, "agents")
    repo = RepoHttp(agent, f"{member.org}/data")
    session = _held(repo, "bad.txt")["session_id"]
    rejected = api.post(f"{repo.base}/sessions/{session}/reject", json={"reason": "not now"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["state"], rejected.json()["reason"]) == ("rejected", "not now")
    assert agent.head(f"{repo.base}/sessions/{session}/approve").status_code == 404
    assert "bad.txt" not in RepoHttp(api, repo.repository).tree()
    again = api.post(f"{repo.base}/sessions/{session}/reject", json={})
    assert again.status_code == 409
    pending = api.get(f"{repo.base}/approvals", params={"state": "pending"}).json()
    assert pending["total"] == 0
    assert api.get(f"{repo.base}/approvals", params={"state": "maybe"}).status_code == 400


def test_path_prefixes_narrow_the_rule_and_nobody_approves_their_own_change(
    api: httpx.Client, member: Member
) -> None:
    _rule(api, member, "all", ["secure/"])
    admin = member.repo
    outside = admin.session()
    admin.put(outside, "open/readme.md", b"hello")
    admin.commit(outside)  # 200: no path under secure/
    held = _held(admin, "secure/keys.txt")
    approve = f"{admin.base}/sessions/{held['session_id']}/approve"
    own = api.post(approve, json={"message": "mine"})
    assert own.status_code == 403 and own.json()["code"] == "self_approval"
    # Another member with the right to approve lands it.
    policy = api.post(
        f"{member.o}/policies",
        json={"name": "approver", "policy_text": "ApproveSession()\nGetSession()\n"},
    )
    assert policy.status_code == 201, policy.text
    attached = api.post(
        f"{member.o}/policies/{policy.json()['id']}/attachments",
        json={"principal_type": "user", "principal_id": member.user_id},
    )
    assert attached.status_code in (200, 201, 204), attached.text
    assert member.client.post(approve, json={"message": "ok"}).status_code == 200
    assert "secure/keys.txt" in admin.tree()


def test_rolling_back_a_held_session_withdraws_its_request(
    api: httpx.Client, member: Member, agent: httpx.Client
) -> None:
    _rule(api, member, "agents")
    repo = RepoHttp(agent, f"{member.org}/data")
    session = _held(repo, "draft.txt")["session_id"]
    assert agent.delete(f"{repo.base}/sessions/{session}").status_code == 204
    record = api.get(f"{repo.base}/approvals/{session}").json()
    assert record["state"] == "withdrawn"
    assert agent.head(f"{repo.base}/sessions/{session}/approve").status_code == 404


def test_the_rule_is_validated(api: httpx.Client, member: Member) -> None:
    bad = api.put(f"{member.o}/repositories/data", json={"approval_required_for": "robots"})
    assert bad.status_code == 400 and "approval_required_for" in bad.json()["message"]
    bad = api.post(
        f"{member.o}/repositories",
        json={"name": "more", "approval_paths": ["ok/", "bad\u0000"]},
    )
    assert bad.status_code == 400 and "approval_paths" in bad.json()["message"]


@needs_sandboxes
def test_a_sandbox_held_for_approval_lands_when_approved(
    api: httpx.Client, member: Member, agent: httpx.Client, local_server: LocalServer
) -> None:
    _rule(api, member, "agents")
    agent_id = api.get(f"{member.o}/agents/writer").json()["id"]
    boxes = Sandboxes(member.repo, local_server.endpoint_url, local_server.api_key)
    sandbox = boxes.create(
        command=["sh", "-c", "echo result > /sandbox/out.txt"],
        run_as={"type": "agent", "id": agent_id},
    )
    status = boxes.wait(sandbox)
    assert (status["status"], status["status_reason"]) == ("done", "awaiting_approval"), status
    assert status["web_url"].startswith(local_server.endpoint_url + "/approvals/")
    assert "out.txt" not in member.repo.tree()
    held = api.get(f"{member.repo.base}/approvals", params={"state": "pending"}).json()["items"]
    assert [(item["sandbox_id"], item["requested_by"]["name"]) for item in held] == [
        (sandbox, "writer")
    ]
    session = held[0]["session_id"]
    approved = api.post(f"{member.repo.base}/sessions/{session}/approve", json={"message": ""})
    assert approved.status_code == 200, approved.text
    status = boxes.status(sandbox)
    assert (status["status"], status["status_reason"]) == ("done", "committed"), status
    assert status["commit_id"] == approved.json()["commit_id"]
    assert member.repo.read("out.txt") == b"result\n"
    # The run's audit trail: created, held (by the agent it ran as), approved.
    entries = api.get(f"{member.o}/audit-log").json()["items"]
    trail = [
        (e["action"], e["outcome"], e["principal_name"])
        for e in entries
        if e["resource_id"] in (sandbox, session)
    ]
    assert trail[0][:2] == ("CreateSandbox", "success")
    assert trail[1:] == [
        ("CommitSession", "approval_required", "writer"),
        ("ApproveSession", "approved", trail[0][2]),
    ]
    # Its evidence pack records the decisions and the approval.
    pack = pack_of(boxes, sandbox)
    parts = {p["name"]: p["body"] for p in pack["document"]["parts"]}
    assert parts["approval"]["record"]["state"] == "approved"
    assert any(
        d["action"] == "PutObject" and d["allowed"] for d in parts["policy_decisions"]["decisions"]
    )


@needs_sandboxes
def test_a_rejected_sandbox_change_fails_its_landing(
    api: httpx.Client, member: Member, local_server: LocalServer
) -> None:
    _rule(api, member, "all")
    boxes = Sandboxes(member.repo, local_server.endpoint_url, local_server.api_key)
    sandbox = boxes.create(command=["sh", "-c", "echo no > /sandbox/no.txt"])
    assert boxes.wait(sandbox)["status_reason"] == "awaiting_approval"
    session = api.get(f"{member.repo.base}/approvals").json()["items"][0]["session_id"]
    # The admin started it, so another member decides; with the right to.
    policy = api.post(
        f"{member.o}/policies", json={"name": "approver", "policy_text": "ApproveSession()\n"}
    )
    api.post(
        f"{member.o}/policies/{policy.json()['id']}/attachments",
        json={"principal_type": "user", "principal_id": member.user_id},
    )
    rejected = member.client.post(
        f"{member.repo.base}/sessions/{session}/reject", json={"reason": "wrong file"}
    )
    assert rejected.status_code == 200, rejected.text
    status = boxes.status(sandbox)
    assert (status["status"], status["status_reason"]) == ("failed", "commit_failed")
    assert "rejected" in status["error_message"] and "wrong file" in status["error_message"]
    assert "no.txt" not in member.repo.tree()
