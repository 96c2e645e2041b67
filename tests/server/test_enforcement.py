"""Policies decide what a member may do, on every route family: a member with ReadOnly, with
custom path-scoped policies, and with policies it holds through three levels of groups; Deny
beats allow; a change takes effect on the next request; non-members learn nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.server.members import Member, new_member


@pytest.fixture
def member(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> Iterator[Member]:
    found = new_member(api, local_server, unique_name)
    session = found.repo.session()
    found.repo.put(session, "public/a.txt", b"public")
    found.repo.put(session, "private/b.txt", b"private")
    found.repo.commit(session)
    yield found
    found.client.close()


def _builtin(api: httpx.Client, member: Member, name: str) -> str:
    listed = api.get(f"{member.o}/policies").json()["results"]
    policy_id: str = next(p["id"] for p in listed if p["name"] == name)
    return policy_id


def _detach_default(api: httpx.Client, member: Member) -> None:
    response = api.delete(
        f"{member.o}/policies/{_builtin(api, member, 'ReadWrite')}/attachments",
        params={"principal_type": "user", "principal_id": member.user_id},
    )
    assert response.status_code == 204, response.text


def _policy(api: httpx.Client, member: Member, name: str, text: str) -> str:
    response = api.post(f"{member.o}/policies", json={"name": name, "policy_text": text})
    assert response.status_code == 201, response.text
    policy_id: str = response.json()["id"]
    return policy_id


def _attach(api: httpx.Client, member: Member, policy_id: str, kind: str, pid: str) -> None:
    response = api.post(
        f"{member.o}/policies/{policy_id}/attachments",
        json={"principal_type": kind, "principal_id": pid},
    )
    assert response.status_code == 201, response.text


def _denied(response: httpx.Response, action: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "forbidden" and body["request_id"]
    assert body["message"].startswith(f"{action} on "), body["message"]


def _allowed(response: httpx.Response) -> None:
    assert response.status_code < 400, response.text


class Calls:
    """One request per route family, as the member."""

    def __init__(self, member: Member) -> None:
        self.c = member.client
        self.r = f"{member.o}/repositories/data"
        self.o = member.o

    def list_repositories(self) -> httpx.Response:
        return self.c.get(f"{self.o}/repositories")

    def create_repository(self) -> httpx.Response:
        return self.c.post(f"{self.o}/repositories", json={"name": "more"})

    def create_session(self) -> httpx.Response:
        return self.c.post(f"{self.r}/sessions")

    def list_objects(self) -> httpx.Response:
        return self.c.get(f"{self.r}/objects")

    def get_object(self, path: str) -> httpx.Response:
        return self.c.get(f"{self.r}/object", params={"path": path})

    def put_object(self, session: str, path: str) -> httpx.Response:
        return self.c.put(f"{self.r}/object", params={"session_id": session, "path": path})

    def copy(self, session: str, source: str, destination: str) -> httpx.Response:
        return self.c.post(
            f"{self.r}/object/copy",
            params={"session_id": session, "source_path": source, "destination_path": destination},
        )

    def delete_many(self, session: str, paths: list[str]) -> httpx.Response:
        return self.c.post(
            f"{self.r}/objects/delete", params={"session_id": session}, json={"paths": paths}
        )

    def list_commits(self) -> httpx.Response:
        return self.c.get(f"{self.r}/log")

    def list_open_sessions(self) -> httpx.Response:
        return self.c.get(f"{self.r}/sessions")

    def create_sandbox(self) -> httpx.Response:
        return self.c.post(f"{self.r}/sandboxes", json={"command": ["true"]})


def test_a_plain_member_has_read_write_but_not_administration(member: Member) -> None:
    calls = Calls(member)
    _allowed(calls.list_objects())
    session = calls.create_session().json()["session_id"]
    _allowed(calls.put_object(session, "private/c.txt"))
    _denied(calls.create_repository(), "CreateRepository")
    _denied(member.client.post(f"{member.o}/groups", json={"name": "g"}), "ManageGroups")
    _denied(member.client.get(f"{member.o}/policies"), "ManagePolicies")


def test_read_only(api: httpx.Client, member: Member) -> None:
    _detach_default(api, member)
    _attach(api, member, _builtin(api, member, "ReadOnly"), "user", member.user_id)
    calls = Calls(member)
    _allowed(calls.list_repositories())
    _allowed(calls.list_objects())
    _allowed(calls.get_object("private/b.txt"))
    _allowed(calls.list_commits())
    _allowed(calls.list_open_sessions())
    _denied(calls.create_repository(), "CreateRepository")
    _denied(calls.create_session(), "CreateSession")
    admin_session = member.repo.session()
    _denied(calls.put_object(admin_session, "public/new.txt"), "PutObject")
    _denied(calls.copy(admin_session, "public/a.txt", "public/z.txt"), "PutObject")
    _denied(calls.delete_many(admin_session, ["public/a.txt"]), "DeleteObject")
    _denied(calls.create_sandbox(), "CreateSandbox")


PATH_POLICY = """\
ListRepositories()
GetRepository()
ListObjects()
ListCommits()
CreateSession()
GetObject(path="public/*")
PutObject(path="public/*")
DeleteObject(path="public/*")
"""


def _check_path_scoped(member: Member) -> None:
    calls = Calls(member)
    _allowed(calls.get_object("public/a.txt"))
    denied = calls.get_object("private/b.txt")
    _denied(denied, "GetObject")
    assert f"{member.org}/data/private/b.txt" in denied.json()["message"]
    session = calls.create_session().json()["session_id"]
    _allowed(calls.put_object(session, "public/new.txt"))
    _denied(calls.put_object(session, "private/new.txt"), "PutObject")
    _allowed(calls.copy(session, "public/a.txt", "public/copy.txt"))
    _denied(calls.copy(session, "public/a.txt", "private/copy.txt"), "PutObject")
    _denied(calls.copy(session, "private/b.txt", "public/copy2.txt"), "GetObject")
    _denied(calls.delete_many(session, ["public/a.txt", "private/b.txt"]), "DeleteObject")
    _allowed(calls.delete_many(session, ["public/a.txt"]))
    _allowed(calls.list_commits())
    _denied(calls.list_open_sessions(), "GetSession")
    _denied(calls.create_sandbox(), "CreateSandbox")


def test_custom_path_scoped_policies(api: httpx.Client, member: Member) -> None:
    _detach_default(api, member)
    _attach(api, member, _policy(api, member, "public-only", PATH_POLICY), "user", member.user_id)
    _check_path_scoped(member)


def test_policies_held_through_three_levels_of_groups(api: httpx.Client, member: Member) -> None:
    _detach_default(api, member)
    ids = []
    for name in ("team", "dept", "company"):
        response = api.post(f"{member.o}/groups", json={"name": name})
        ids.append(response.json()["id"])
    members = [("user", member.user_id), ("group", ids[0]), ("group", ids[1])]
    for group_id, (kind, subject) in zip(ids, members, strict=True):
        added = api.post(
            f"{member.o}/groups/{group_id}/members",
            json={"subject_type": kind, "subject_id": subject},
        )
        assert added.status_code == 201, added.text
    _denied(Calls(member).list_objects(), "ListObjects")
    _attach(api, member, _policy(api, member, "public-only", PATH_POLICY), "group", ids[2])
    _check_path_scoped(member)
    effective = api.get(
        f"{member.o}/effective-policies",
        params={"principal_type": "user", "principal_id": member.user_id},
    ).json()["results"]
    assert [(p["policy_name"], p["source"], p["source_name"]) for p in effective] == [
        ("public-only", "group", "company")
    ]


def test_deny_beats_allow_and_changes_apply_on_the_next_request(
    api: httpx.Client, member: Member
) -> None:
    calls = Calls(member)
    session = calls.create_session().json()["session_id"]
    _allowed(calls.put_object(session, "private/x.txt"))
    policy_id = _policy(api, member, "lock", 'Deny PutObject(path="private/*")\n')
    _attach(api, member, policy_id, "user", member.user_id)
    denied = calls.put_object(session, "private/x.txt")
    _denied(denied, "PutObject")
    assert "lock" in denied.json()["message"]
    _allowed(calls.put_object(session, "public/x.txt"))  # ReadWrite still allows the rest
    changed = api.put(
        f"{member.o}/policies/{policy_id}", json={"policy_text": 'Deny PutObject(path="public/*")'}
    )
    assert changed.status_code == 200
    _allowed(calls.put_object(session, "private/x.txt"))
    _denied(calls.put_object(session, "public/x.txt"), "PutObject")


def test_a_non_member_learns_nothing(
    api: httpx.Client, local_server: LocalServer, member: Member, unique_name: Callable[..., str]
) -> None:
    other = new_member(api, local_server, unique_name)
    try:
        for route in ("objects", "sessions"):
            response = other.client.get(f"{member.o}/repositories/data/{route}")
            assert response.status_code == 404
            assert response.json()["code"] == "organization_not_found"
        for repository in ("data", "no-such-repository"):  # a body-scoped check too
            response = other.client.post(
                f"{member.o}/repositories/{repository}/objects/delete",
                params={"session_id": "s"},
                json={"paths": ["a.txt"]},
            )
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "organization_not_found"
    finally:
        other.client.close()


def test_removing_a_member_takes_its_grants_away(api: httpx.Client, member: Member) -> None:
    assert api.delete(f"{member.o}/members/{member.user_id}").status_code == 204
    effective = api.get(f"{member.o}/effective-policies", params={"user_id": member.user_id})
    assert effective.json()["results"] == []


def test_a_rego_policy_is_enforced_beside_the_policy_language(
    api: httpx.Client, member: Member
) -> None:
    _detach_default(api, member)
    rego = (
        "package lamina\n\n"
        'allow if input.action in {"GetRepository", "ListObjects", "GetObject"}\n'
        'deny contains "private/ is off limits" if startswith(input.resource.path, "private/")\n'
    )
    created = api.post(f"{member.o}/policies", json={"name": "rego-reader", "rego": rego})
    assert created.status_code == 201, created.text
    assert created.json()["language"] == "rego" and created.json()["rego"] == rego
    _attach(api, member, created.json()["id"], "user", member.user_id)
    calls = Calls(member)
    _allowed(calls.get_object("public/a.txt"))
    refused = calls.get_object("private/b.txt")
    _denied(refused, "GetObject")
    assert "private/ is off limits" in refused.json()["message"]
    _denied(calls.put_object("any-session", "public/c.txt"), "PutObject")  # refused first


def _may(member: Member, action: str, resource: str) -> dict[str, object]:
    response = member.client.get(
        "/auth/permission", params={"action": action, "resource": resource}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    assert (answer["action"], answer["resource"]) == (action, resource)
    return answer


def test_the_permission_route_answers_as_the_routes_decide(
    api: httpx.Client, member: Member, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    _detach_default(api, member)
    rego = 'package lamina\n\nallow if input.action == "GetObject"\ndeny contains "no" if startswith(input.resource.path, "private/")\n'
    created = api.post(f"{member.o}/policies", json={"name": "rego-reader", "rego": rego})
    assert created.status_code == 201, created.text
    _attach(api, member, created.json()["id"], "user", member.user_id)
    _attach(api, member, _policy(api, member, "lister", "ListObjects()\n"), "user", member.user_id)
    calls, data = Calls(member), f"{member.org}/data"

    allowed = _may(member, "GetObject", f"{data}/public/a.txt")
    assert allowed["allowed"] is True
    _allowed(calls.get_object("public/a.txt"))
    refused = _may(member, "GetObject", f"{data}/private/b.txt")
    assert refused["allowed"] is False and "no" in str(refused["reason"])
    _denied(calls.get_object("private/b.txt"), "GetObject")
    assert _may(member, "ListObjects", data)["allowed"] is True
    _allowed(calls.list_objects())
    nothing = _may(member, "CreateSession", data)
    assert nothing["allowed"] is False and "no policy allows CreateSession" in str(
        nothing["reason"]
    )
    _denied(calls.create_session(), "CreateSession")
    # no right to read policies was needed to ask
    _denied(member.client.get(f"{member.o}/policies"), "ManagePolicies")

    bad = member.client.get("/auth/permission", params={"action": "Fly", "resource": data})
    assert bad.status_code == 400 and "Fly" in bad.json()["message"]
    malformed = member.client.get(
        "/auth/permission", params={"action": "GetObject", "resource": f"{member.org}//x"}
    )
    assert malformed.status_code == 400
    other = new_member(api, local_server, unique_name)
    try:  # a non-member learns nothing of the organization, not even that it exists
        for org in (member.org, "no-such-org"):
            hidden = other.client.get(
                "/auth/permission", params={"action": "GetObject", "resource": f"{org}/data"}
            )
            assert hidden.status_code == 404 and hidden.json()["code"] == "organization_not_found"
    finally:
        other.client.close()


def test_running_a_sandbox_as_an_agent_needs_the_right_to_manage_agents(
    api: httpx.Client, member: Member
) -> None:
    agent = api.post(f"{member.o}/agents", json={"name": "runner", "description": ""})
    assert agent.status_code == 201, agent.text
    body = {
        "image": "host",
        "command": ["true"],
        "run_as": {"type": "agent", "id": agent.json()["id"]},
    }
    sandboxes = f"{member.o}/repositories/data/sandboxes"
    # A member with ReadWrite may run sandboxes, but not as an agent (its secrets, its rights).
    _denied(member.client.post(sandboxes, json=body), "ManageAgents")
    unknown = {**body, "run_as": {"type": "agent", "id": "00000000-0000-0000-0000-000000000000"}}
    assert api.post(sandboxes, json=unknown).status_code == 404
    assert api.post(sandboxes, json=body).status_code == 201
    if BubblewrapRunner().check() is not None:
        return
    # It acts as the agent: judged by the agent's policy, and its commit is the agent's.
    assert api.put(
        f"{member.o}/agents/runner", json={"inline_policy": "GetObject()\nPutObject()\n"}
    ).is_success
    created = api.post(
        sandboxes, json={**body, "command": ["sh", "-c", "echo by-agent > /sandbox/agent.txt"]}
    )
    assert created.status_code == 201, created.text
    status: dict[str, object] = {}
    for _ in range(600):
        status = api.get(f"{sandboxes}/{created.json()['sandbox_id']}/status").json()
        if status["status"] not in ("starting", "running"):
            break
        time.sleep(0.05)
    assert status["status_reason"] == "committed", status
    commit = api.get(f"{member.o}/repositories/data/commits/{status['commit_id']}").json()
    assert commit["committer"] == "runner", commit


@pytest.mark.parametrize("kind", ["agent", "role"])
def test_agents_and_roles_are_judged_by_their_policies_on_every_route_family(
    api: httpx.Client, member: Member, kind: str
) -> None:
    plural = f"{kind}s"
    created = api.post(f"{member.o}/{plural}", json={"name": "machine", "description": ""})
    assert created.status_code == 201, created.text
    machine_id = created.json()["id"]
    token = api.post(f"{member.o}/{plural}/machine/auth/keys", json={"name": "k"}).json()["token"]
    client = httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
    )
    calls = Calls(Member(member.org, member.repo, machine_id, client))
    try:
        _denied(calls.list_objects(), "ListObjects")  # a new machine principal holds nothing
        _attach(api, member, _builtin(api, member, "ReadOnly"), kind, machine_id)
        _allowed(calls.list_repositories())
        _allowed(calls.list_objects())
        _allowed(calls.get_object("private/b.txt"))
        _allowed(calls.list_commits())
        _denied(calls.create_session(), "CreateSession")
        _denied(calls.create_sandbox(), "CreateSandbox")
        _denied(calls.create_repository(), "CreateRepository")
        writer = _policy(
            api,
            member,
            f"{kind}-writer",
            'CreateSession()\nPutObject(path="public/*")\nCommitSession()\n',
        )
        _attach(api, member, writer, kind, machine_id)
        session = calls.create_session().json()["session_id"]
        _allowed(calls.put_object(session, "public/n.txt"))
        _denied(calls.put_object(session, "private/n.txt"), "PutObject")
        _denied(calls.copy(session, "public/a.txt", "private/copy.txt"), "PutObject")
    finally:
        client.close()


@pytest.mark.skipif(BubblewrapRunner().check() is not None, reason="sandboxes cannot run here")
def test_a_sandbox_reaches_only_what_its_principal_may(api: httpx.Client, member: Member) -> None:
    _detach_default(api, member)
    sandbox_rights = "CreateSandbox()\nGetSandbox()\n"
    writer = _policy(
        api,
        member,
        "public-writer",
        sandbox_rights + 'GetObject()\nPutObject(path="public/*")\nDeleteObject(path="public/*")\n',
    )
    _attach(api, member, writer, "user", member.user_id)
    sandboxes = f"{member.o}/repositories/data/sandboxes"

    def run(script: str, **options: str) -> dict[str, object]:
        body = {"command": ["sh", "-c", script], **options}
        created = member.client.post(sandboxes, json=body)
        assert created.status_code == 201, created.text
        status: dict[str, object] = {}
        for _ in range(600):
            status = api.get(f"{sandboxes}/{created.json()['sandbox_id']}/status").json()
            if status["status"] not in ("starting", "running"):
                return status
            time.sleep(0.05)
        raise AssertionError(status)

    # What it writes is judged as its principal: one refusal and nothing lands.
    refused = run("echo x > /sandbox/public/ok.txt; echo y > /sandbox/private/no.txt")
    assert (refused["status"], refused["status_reason"]) == ("failed", "policy_violation")
    message = str(refused["error_message"])
    assert "PutObject on" in message and "private/no.txt" in message
    assert "public/ok.txt" not in member.repo.tree()
    assert run("rm -rf /sandbox/private")["status_reason"] == "policy_violation"
    landed = run("echo x > /sandbox/public/ok.txt")
    assert landed["status_reason"] == "committed", landed
    assert member.repo.read("public/ok.txt") == b"x\n"

    # What it shows is what its principal may read: a mount it may not read whole is refused.
    reader = _policy(api, member, "public-reader", sandbox_rights + 'GetObject(path="public/*")\n')
    api.delete(
        f"{member.o}/policies/{writer}/attachments",
        params={"principal_type": "user", "principal_id": member.user_id},
    )
    _attach(api, member, reader, "user", member.user_id)
    hidden = run("cat /sandbox/private/b.txt")
    assert (hidden["status"], hidden["status_reason"]) == ("failed", "policy_violation")
    assert "GetObject on" in str(hidden["error_message"]) and "private/b.txt" in str(
        hidden["error_message"]
    )
    shown = run("cat /sandbox/a.txt", path_prefix="public")
    assert shown["status_reason"] == "no_changes", shown


@pytest.mark.local_blobs_only(
    "the local data plane's token binds the range; an S3 URL signs the object only"
)
def test_a_signed_url_carries_only_what_its_request_was_allowed(
    api: httpx.Client, member: Member
) -> None:
    _detach_default(api, member)
    policy = 'CreateSession()\nPutObject(path="public/*")\nGetObject(path="public/*")\n'
    _attach(api, member, _policy(api, member, "public-only", policy), "user", member.user_id)
    calls = Calls(member)
    session = calls.create_session().json()["session_id"]
    ticket = calls.put_object(session, "public/new.txt").json()
    assert httpx.put(ticket["upload_url"], content=b"data").is_success
    # The upload's token names repository, session and path: it does not move to another path,
    # and the finalize of another path is judged by policy first.
    moved = member.client.post(
        f"{calls.r}/object/finalize",
        params={"session_id": session, "path": "private/new.txt"},
        json={"upload_token": ticket["upload_token"]},
    )
    _denied(moved, "PutObject")
    # A download URL is issued only for what the caller may read, and names one blob.
    _denied(calls.get_object("private/b.txt"), "GetObject")
    public = member.client.get(
        f"{calls.r}/object", params={"path": "public/a.txt"}, follow_redirects=False
    )
    assert public.status_code in (302, 307), public.text
    url = public.headers["location"]
    assert httpx.get(url).content == b"public"
    forged = url.replace("token=", "token=x")
    assert httpx.get(forged).status_code == 403
