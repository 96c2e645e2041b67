"""Administration and governance from the command line: organizations, repositories, agents
and their keys, policies, approvals of held commits, and the audit log."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from lamina.testing import LocalServer
from tests.cli.conftest import Invoke

AGENT_POLICY = (
    "CreateSession()\nGetSession()\nPutObject()\nCommitSession()\nRollbackSession()\n"
    "ListObjects()\nGetObject()\n"
)


def test_organizations(
    lamina: Invoke, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    name = unique_name("org")
    created = lamina("org", "create", name, "--display-name", "Test Org")
    assert created.exit_code == 0 and f"Created organization {name}." in created.stdout
    listed = lamina("org", "ls").stdout.splitlines()
    assert listed[0].split() == ["NAME", "DISPLAY", "NAME", "CREATED"]
    assert any(line.startswith(f"{name} ") and "Test Org" in line for line in listed)
    names = [org["name"] for org in json.loads(lamina("org", "ls", "--json").stdout)]
    assert {name, local_server.org} <= set(names)
    taken = lamina("org", "create", name)
    assert taken.exit_code == 1 and "HTTP 409" in taken.stderr


def test_repositories(
    lamina: Invoke, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    path = f"{local_server.org}/{unique_name('repo')}"
    created = lamina("repo", "create", path, "--description", "for the test")
    assert created.exit_code == 0 and f"Created repository {path}." in created.stdout
    assert any(
        line.startswith(path) and line.endswith("for the test")
        for line in lamina("repo", "ls", local_server.org).stdout.splitlines()
    )
    listed = json.loads(lamina("repo", "ls", local_server.org, "--json").stdout)
    assert path.split("/")[1] in [item["name"] for item in listed]

    kept = lamina("repo", "rm", path, input="n\n")
    assert kept.exit_code == 1 and "Aborted" in kept.output
    assert path in lamina("ls", local_server.org).stdout.splitlines()
    assert lamina("repo", "rm", path, "--yes").exit_code == 0
    assert path not in lamina("ls", local_server.org).stdout.splitlines()
    bad = lamina("repo", "create", f"{local_server.org}/Not A Name")
    assert bad.exit_code == 1 and "HTTP 4" in bad.stderr


def test_agents_keys_and_approvals(
    lamina: Invoke,
    local_server: LocalServer,
    unique_name: Callable[..., str],
    tmp_path: Path,
) -> None:
    org = local_server.org
    repo = f"{org}/{unique_name('held')}"
    assert lamina("repo", "create", repo, "--approval-required-for", "agents").exit_code == 0
    policy = tmp_path / "agent.policy"
    policy.write_text(AGENT_POLICY)
    agent = unique_name("bot")
    created = lamina(
        "agent", "create", org, agent, "--description", "writer", "--policy", str(policy)
    )
    assert created.exit_code == 0, created.output
    assert any(line.startswith(agent) for line in lamina("agent", "ls", org).stdout.splitlines())

    issued = lamina("key", "create", "k1", "--agent", f"{org}/{agent}", "--json")
    assert issued.exit_code == 0, issued.output
    key = json.loads(issued.stdout)
    as_agent = {"LAMINA_API_KEY": key["token"]}

    # the agent's commit is held; the admin approves it
    source = tmp_path / "x.txt"
    source.write_bytes(b"from the agent")
    held = lamina("cp", str(source), f"{repo}/x.txt", "-m", "agent change", env=as_agent)
    assert held.exit_code == 0, held.output
    assert re.search(r"Awaiting approval: http\S+", held.stdout)
    pending = lamina("approvals", "ls", repo, "--state", "pending").stdout.splitlines()
    assert len(pending) == 2 and "pending" in pending[1] and agent in pending[1]
    session = pending[1].split()[0]
    own = lamina("approvals", "approve", repo, session, env=as_agent)
    assert own.exit_code == 1 and "HTTP 403" in own.stderr  # nobody approves their own
    approved = lamina("approvals", "approve", repo, session, "-m", "reviewed")
    assert approved.exit_code == 0 and approved.stdout.startswith("Committed ")
    assert lamina("cat", f"{repo}/x.txt").stdout == "from the agent"

    second = lamina("cp", str(source), f"{repo}/y.txt", "-m", "another", env=as_agent)
    assert second.exit_code == 0
    [request] = json.loads(lamina("approvals", "ls", repo, "--state", "pending", "--json").stdout)
    rejected = lamina("approvals", "reject", repo, request["session_id"], "--reason", "no")
    assert rejected.exit_code == 0, rejected.output
    states = {
        a["session_id"]: a["state"]
        for a in json.loads(lamina("approvals", "ls", repo, "--json").stdout)
    }
    assert states == {session: "approved", request["session_id"]: "rejected"}
    assert lamina("ls", repo).stdout.splitlines() == ["x.txt"]

    # the agent's key: listed, revoked, refused from then on
    keys = lamina("key", "ls", "--agent", f"{org}/{agent}").stdout
    assert key["id"] in keys and "active" in keys
    assert lamina("key", "revoke", key["id"], "--agent", f"{org}/{agent}").exit_code == 0
    assert "revoked" in lamina("key", "ls", "--agent", f"{org}/{agent}").stdout
    refused = lamina("ls", repo, env=as_agent)
    assert refused.exit_code == 1 and "HTTP 401" in refused.stderr

    assert lamina("agent", "rm", org, agent).exit_code == 0
    assert agent not in lamina("agent", "ls", org).stdout
    gone = lamina("key", "ls", "--agent", f"{org}/{agent}")
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr


def test_user_keys(lamina: Invoke) -> None:
    issued = lamina("key", "create", "laptop", "--description", "test")
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    assert "shown only once" in issued.stderr
    key_id = re.search(r"Key (\S+) \(laptop\)", issued.stderr)
    assert key_id
    assert lamina("auth", "whoami", env={"LAMINA_API_KEY": token}).exit_code == 0
    listed = json.loads(lamina("key", "ls", "--json").stdout)
    assert key_id.group(1) in [item["id"] for item in listed]
    assert lamina("key", "revoke", key_id.group(1)).exit_code == 0
    assert lamina("auth", "whoami", env={"LAMINA_API_KEY": token}).exit_code == 1


def test_policy_validate_and_list(
    lamina: Invoke, local_server: LocalServer, tmp_path: Path
) -> None:
    good = tmp_path / "good.policy"
    good.write_text('GetObject(repository="acme/*")\nDeny PutObject()\n')
    valid = lamina("policy", "validate", str(good), "--org", local_server.org)
    assert valid.exit_code == 0 and valid.stdout == f"{good}: valid\n"
    assert lamina("policy", "validate", str(good)).exit_code == 0  # the caller's first org
    bad = tmp_path / "bad.policy"
    bad.write_text("GetObject()\nNoSuchAction(\n")
    invalid = lamina("policy", "validate", str(bad))
    assert invalid.exit_code == 1
    assert re.match(rf"{re.escape(str(bad))}:2:\d+: ", invalid.stdout), invalid.stdout
    as_json = json.loads(lamina("policy", "validate", str(bad), "--json").stdout)
    assert as_json["valid"] is False and as_json["errors"][0]["line"] == 2
    from_stdin = lamina("policy", "validate", "-", input=good.read_text())
    assert from_stdin.exit_code == 0
    listed = lamina("policy", "ls", local_server.org).stdout.splitlines()
    assert listed[0].split()[:2] == ["ID", "NAME"] and len(listed) > 1


def test_audit_log(
    lamina: Invoke, local_server: LocalServer, repository: str, tmp_path: Path
) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    assert lamina("cp", str(source), f"{repository}/a.txt", "-m", "audited").exit_code == 0
    entries = json.loads(
        lamina("audit", "ls", local_server.org, "--action", "CommitSession", "--json").stdout
    )
    assert entries and {entry["action"] for entry in entries} == {"CommitSession"}
    assert any(repository in entry["resource"] for entry in entries)
    rows = lamina("audit", "ls", local_server.org, "-n", "3").stdout.splitlines()
    assert rows[0].split()[:3] == ["SEQ", "TIME", "PRINCIPAL"] and len(rows) == 4
    future = lamina("audit", "ls", local_server.org, "--since", "2999-01-01")
    assert future.exit_code == 0 and future.stdout == "" and "(none)" in future.stderr
