"""The identity and governance calls on the wire, against a scripted transport: each sends the
request the contract names (wire-protocol §2.1, §2.8; tilde-openapi) and reads its answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lamina import AsyncClient, ForbiddenError, NotFoundError, PolicySyntaxError

pytestmark = pytest.mark.anyio

ORG = "/api/v1/organizations/acme"
AT = "2026-01-02T03:04:05Z"
AGENT = {"id": "a1", "name": "bot", "description": "d", "metadata": {}, "inline_policy": "X()"}
KEY = {"id": "k1", "name": "ci", "description": "", "token_hint": "wxyz", "created_at": AT}
GROUP = {"id": "g1", "name": "analysts", "description": ""}
POLICY = {"id": "p1", "name": "readers", "policy_text": "GetObject()"}
PAGE = {"has_more": False, "next_offset": "", "max_per_page": 100}


class Script:
    """A transport that answers ``(method, path)`` from a table and records every request."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, dict(request.url.params), body))
        status, answer = self.answers.get(
            (request.method, request.url.path),
            (404, {"message": "no route", "code": "not_found", "request_id": "r"}),
        )
        if answer is None:
            return httpx.Response(status)
        return httpx.Response(status, json=answer)


@pytest.fixture
def script() -> Script:
    return Script({})


@pytest.fixture
async def client(script: Script) -> AsyncIterator[AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    async with AsyncClient(
        api_key="tuk-test", endpoint_url="http://lamina.test", http_client=http, max_retries=0
    ) as client:
        yield client
    await http.aclose()


async def test_agents_and_their_keys(client: AsyncClient, script: Script) -> None:
    script.answers.update(
        {
            ("POST", f"{ORG}/agents"): (201, AGENT),
            ("PUT", f"{ORG}/agents/bot"): (200, {**AGENT, "inline_policy": ""}),
            ("GET", f"{ORG}/agents"): (200, {"results": [AGENT], "pagination": PAGE}),
            ("POST", f"{ORG}/agents/bot/auth/keys"): (
                201,
                {"token": "tak-secret", "id": "k1", "name": "ci", "description": "x"},
            ),
            ("GET", f"{ORG}/agents/bot/auth/keys"): (200, {"results": [KEY]}),
            ("GET", f"{ORG}/agents/bot/auth/keys/k1"): (200, KEY),
            ("DELETE", f"{ORG}/agents/bot/auth/keys/k1"): (204, None),
            ("DELETE", f"{ORG}/agents/bot"): (204, None),
        }
    )
    agents = client.organization("acme").agents
    agent = await agents.create("bot", description="d", inline_policy="X()")
    await agent.update(inline_policy="")
    assert agent.inline_policy == ""
    assert [a.name async for a in agents.list(page_size=10)] == ["bot"]
    key = await agent.api_keys.create("ci", description="x")
    assert (key.token, key.id, key.description) == ("tak-secret", "k1", "x")
    listed = [k async for k in agent.api_keys.list()]
    assert [(k.token, k.token_hint) for k in listed] == [(None, "wxyz")]
    assert (await agent.api_keys.get("k1")).name == "ci"
    await listed[0].revoke()
    await agents.delete("bot")
    assert [(method, path, query, body) for method, path, query, body in script.sent] == [
        ("POST", f"{ORG}/agents", {}, {"name": "bot", "description": "d", "inline_policy": "X()"}),
        ("PUT", f"{ORG}/agents/bot", {}, {"inline_policy": ""}),
        ("GET", f"{ORG}/agents", {"amount": "10"}, None),
        ("POST", f"{ORG}/agents/bot/auth/keys", {}, {"name": "ci", "description": "x"}),
        ("GET", f"{ORG}/agents/bot/auth/keys", {"amount": "100"}, None),
        ("GET", f"{ORG}/agents/bot/auth/keys/k1", {}, None),
        ("DELETE", f"{ORG}/agents/bot/auth/keys/k1", {}, None),
        ("DELETE", f"{ORG}/agents/bot", {}, None),
    ]


async def test_roles_and_user_keys(client: AsyncClient, script: Script) -> None:
    role = {"id": "r1", "name": "ci", "description": ""}
    script.answers.update(
        {
            ("POST", f"{ORG}/roles"): (201, role),
            ("GET", f"{ORG}/roles/ci"): (200, role),
            ("POST", f"{ORG}/roles/ci/auth/keys"): (
                201,
                {"token": "trk-1", "id": "k2", "name": "n", "description": ""},
            ),
            ("POST", "/api/v1/auth/keys"): (
                201,
                {"token": "tuk-1", "id": "k3", "name": "n", "description": ""},
            ),
            ("DELETE", "/api/v1/auth/keys/k3"): (204, None),
        }
    )
    roles = client.organization("acme").roles
    await roles.create("ci")
    assert (await (await roles.get("ci")).api_keys.create("n")).token == "trk-1"
    assert (await client.auth.keys.create("n")).token == "tuk-1"
    await client.auth.keys.revoke("k3")
    assert [(m, p, b) for m, p, _, b in script.sent] == [
        ("POST", f"{ORG}/roles", {"name": "ci", "description": ""}),
        ("GET", f"{ORG}/roles/ci", None),
        ("POST", f"{ORG}/roles/ci/auth/keys", {"name": "n"}),
        ("POST", "/api/v1/auth/keys", {"name": "n"}),
        ("DELETE", "/api/v1/auth/keys/k3", None),
    ]


async def test_groups_and_members(client: AsyncClient, script: Script) -> None:
    member = {"subject_type": "user", "subject_id": "u1", "username": "ana"}
    detail = {"group": GROUP, "members": [member], "attachments": []}
    script.answers.update(
        {
            ("POST", f"{ORG}/groups"): (201, GROUP),
            ("POST", f"{ORG}/groups/g1/members"): (201, None),
            ("GET", f"{ORG}/groups/g1"): (200, detail),
            ("DELETE", f"{ORG}/groups/g1/members"): (204, None),
            ("GET", f"{ORG}/effective-groups"): (200, {"results": [{"group_id": "g1"}]}),
            ("POST", f"{ORG}/members"): (201, None),
            ("GET", f"{ORG}/members"): (
                200,
                {"results": [{"organization_id": "o", "user_id": "u1", "username": "ana"}]},
            ),
            ("DELETE", f"{ORG}/members/u1"): (204, None),
            ("DELETE", "/api/v1/organizations/acme"): (204, None),
        }
    )
    org = client.organization("acme")
    group = await org.groups.create("analysts")
    added = await group.members.create(subject_type="user", subject_id="u1")
    assert added.username == "ana"
    await group.members.delete(subject_type="user", subject_id="u1")
    assert [g.group_id for g in await org.groups.effective("user", "u1")] == ["g1"]
    assert (await org.members.create("ana")).user_id == "u1"
    await org.members.delete("u1")
    await client.organizations.delete("acme")
    assert [(m, p, q, b) for m, p, q, b in script.sent] == [
        ("POST", f"{ORG}/groups", {}, {"name": "analysts"}),
        ("POST", f"{ORG}/groups/g1/members", {}, {"subject_type": "user", "subject_id": "u1"}),
        ("GET", f"{ORG}/groups/g1", {}, None),
        ("DELETE", f"{ORG}/groups/g1/members", {"subject_type": "user", "subject_id": "u1"}, None),
        ("GET", f"{ORG}/effective-groups", {"principal_type": "user", "principal_id": "u1"}, None),
        ("POST", f"{ORG}/members", {}, {"username": "ana"}),
        ("GET", f"{ORG}/members", {}, None),
        ("DELETE", f"{ORG}/members/u1", {}, None),
        ("DELETE", "/api/v1/organizations/acme", {}, None),
    ]


async def test_policies(client: AsyncClient, script: Script) -> None:
    attachment = {"policy_id": "p1", "principal_type": "group", "principal_id": "g1"}
    script.answers.update(
        {
            ("POST", f"{ORG}/policies:validate"): (
                200,
                {"valid": False, "errors": [{"line": 1, "column": 3, "message": "bad"}]},
            ),
            ("POST", f"{ORG}/policies:generate"): (200, {"policy_text": "GetObject()"}),
            ("POST", f"{ORG}/policies"): (201, POLICY),
            ("POST", f"{ORG}/policies/p1/attachments"): (201, None),
            ("DELETE", f"{ORG}/policies/p1/attachments"): (204, None),
            ("GET", f"{ORG}/attachments"): (200, {"results": [attachment]}),
            ("GET", f"{ORG}/effective-policies"): (200, {"results": [{"policy_id": "p1"}]}),
        }
    )
    policies = client.organization("acme").policies
    result = await policies.validate("G(")
    assert (result.valid, [(e.line, e.column, e.message) for e in result.errors]) == (
        False,
        [(1, 3, "bad")],
    )
    assert await policies.generate("read only") == "GetObject()"
    await policies.create("readers", "GetObject()")
    await policies.attach("p1", "group", "g1")
    await policies.detach("p1", "group", "g1")
    assert [a.principal_id for a in await policies.attachments()] == ["g1"]
    assert [p.policy_id for p in await policies.effective(user_id="u1")] == ["p1"]
    assert [(m, p, q, b) for m, p, q, b in script.sent] == [
        ("POST", f"{ORG}/policies:validate", {}, {"policy_text": "G("}),
        ("POST", f"{ORG}/policies:generate", {}, {"prompt": "read only"}),
        ("POST", f"{ORG}/policies", {}, {"name": "readers", "policy_text": "GetObject()"}),
        (
            "POST",
            f"{ORG}/policies/p1/attachments",
            {},
            {"principal_type": "group", "principal_id": "g1"},
        ),
        (
            "DELETE",
            f"{ORG}/policies/p1/attachments",
            {"principal_type": "group", "principal_id": "g1"},
            None,
        ),
        ("GET", f"{ORG}/attachments", {}, None),
        ("GET", f"{ORG}/effective-policies", {"user_id": "u1"}, None),
    ]


async def test_secrets_load_their_value_lazily(client: AsyncClient, script: Script) -> None:
    base = f"{ORG}/repositories/data/secrets"
    script.answers.update(
        {
            ("PUT", f"{base}/TOKEN"): (200, {"key": "TOKEN"}),
            ("GET", base): (200, {"results": [{"key": "TOKEN", "updated_at": AT}]}),
            ("GET", f"{base}/TOKEN"): (200, {"key": "TOKEN", "value": "s3cret"}),
        }
    )
    secrets = client.repository("acme/data").secrets
    assert (await secrets.create("TOKEN", "s3cret")).value == "s3cret"
    listed = [secret async for secret in secrets.list()]
    assert len(script.sent) == 2  # listing sends no value request
    loaded = await listed[0]
    assert loaded.value == "s3cret"
    assert [(m, p, b) for m, p, _, b in script.sent] == [
        ("PUT", f"{base}/TOKEN", {"value": "s3cret"}),
        ("GET", base, None),
        ("GET", f"{base}/TOKEN", None),
    ]


async def test_explain_reads_the_callers_effective_policies(
    client: AsyncClient, script: Script
) -> None:
    me = {"user": {"id": "u1", "username": "ana"}, "organizations": [], "has_password": False}
    script.answers.update(
        {
            ("GET", "/api/v1/auth/me"): (200, me),
            ("GET", f"{ORG}/effective-policies"): (
                200,
                {"results": [{"policy_id": "p1"}, {"policy_id": "p2"}]},
            ),
            ("GET", f"{ORG}/policies/p1"): (200, {"policy": POLICY, "attachments": []}),
            ("GET", f"{ORG}/policies/p2"): (
                200,
                {
                    "policy": {
                        "id": "p2",
                        "name": "guard",
                        "policy_text": 'Deny GetObject(path="s/*")',
                    }
                },
            ),
        }
    )
    allowed = await client.explain("GetObject", "acme/data/raw/a")
    assert (allowed.allowed, allowed.policy_name, allowed.line) == (True, "readers", 1)
    denied = await client.explain("GetObject", "acme/data/s/a")
    assert (denied.allowed, denied.policy_id, denied.rule) == (
        False,
        "p2",
        'Deny GetObject(path="s/*")',
    )
    assert not (await client.explain("PutObject", "acme/data")).allowed
    assert script.sent[:4] == [
        ("GET", "/api/v1/auth/me", {}, None),
        (
            "GET",
            f"{ORG}/effective-policies",
            {"principal_type": "user", "principal_id": "u1"},
            None,
        ),
        ("GET", f"{ORG}/policies/p1", {}, None),
        ("GET", f"{ORG}/policies/p2", {}, None),
    ]


async def test_a_403_carries_action_and_resource(client: AsyncClient, script: Script) -> None:
    script.answers[("DELETE", f"{ORG}/repositories/data")] = (
        403,
        {
            "message": "DeleteRepository on acme/data is not allowed: denied by policy 'guard'",
            "code": "forbidden",
            "request_id": "r1",
        },
    )
    with pytest.raises(ForbiddenError) as caught:
        await client.organization("acme").repositories.delete("data")
    assert (caught.value.action, caught.value.resource, caught.value.reason) == (
        "DeleteRepository",
        "acme/data",
        "denied by policy 'guard'",
    )
    with pytest.raises(NotFoundError):
        await client.organization("acme").members.get("nobody")


async def test_explain_asks_for_an_agent_by_its_principal(
    client: AsyncClient, script: Script
) -> None:
    me = {
        "user": None,
        "organizations": [],
        "has_password": False,
        "principal": {"type": "agent", "id": "a1", "name": "bot", "organization_id": "o1"},
    }
    script.answers.update(
        {
            ("GET", "/api/v1/auth/me"): (200, me),
            ("GET", f"{ORG}/effective-policies"): (200, {"results": []}),
        }
    )
    assert not (await client.explain("GetObject", "acme/data/a")).allowed
    assert script.sent[1][2] == {"principal_type": "agent", "principal_id": "a1"}


async def test_key_lists_follow_pages_when_the_server_pages(
    client: AsyncClient, script: Script
) -> None:
    pages = iter(
        [
            {"results": [KEY], "pagination": {"has_more": True, "next_offset": "k1"}},
            {"results": [{**KEY, "id": "k2"}], "pagination": {"has_more": False}},
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        script.sent.append(("GET", request.url.path, dict(request.url.params), None))
        return httpx.Response(200, json=next(pages))

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with AsyncClient(
        api_key="tuk-test", endpoint_url="http://lamina.test", http_client=http
    ) as paged:
        assert [key.id async for key in paged.auth.keys.list(page_size=1)] == ["k1", "k2"]
    await http.aclose()
    assert [query for _, _, query, _ in script.sent] == [
        {"amount": "1"},
        {"amount": "1", "after": "k1"},
    ]


async def test_explain_refuses_to_guess_about_a_rego_policy(
    client: AsyncClient, script: Script
) -> None:
    me = {"user": {"id": "u1", "username": "ana"}}
    rego = {"id": "p3", "name": "opa", "policy_text": "package x", "language": "rego"}
    script.answers.update(
        {
            ("GET", "/api/v1/auth/me"): (200, me),
            ("GET", f"{ORG}/effective-policies"): (200, {"results": [{"policy_id": "p3"}]}),
            ("GET", f"{ORG}/policies/p3"): (200, {"policy": rego}),
        }
    )
    with pytest.raises(PolicySyntaxError, match=r"policy 'opa'.*a rego policy"):
        await client.explain("GetObject", "acme/data")
