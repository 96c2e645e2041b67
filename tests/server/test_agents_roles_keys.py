"""Agents, roles and API keys of every principal type, over real HTTP: wire shapes, keys shown
once and stored hashed, authentication as each principal, and revocation on the next request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.testing import LocalServer
from tests.postgres import data_args

AGENT_KEYS = {
    "id",
    "organization_id",
    "name",
    "description",
    "metadata",
    "inline_policy",
    "inline_policy_updated_at",
    "created_by_type",
    "created_by",
    "created_by_name",
    "created_at",
    "last_used_at",
}
ROLE_KEYS = AGENT_KEYS - {"metadata", "inline_policy", "inline_policy_updated_at"}
TOKEN_KEYS = {"id", "name", "description", "token_hint", "created_at", "last_used_at", "revoked_at"}


def error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"message", "code", "request_id"}
    return body


@pytest.fixture
def org(api: httpx.Client, unique_name: Callable[..., str]) -> str:
    name = unique_name("org")
    response = api.post("/organizations", json={"name": name, "display_name": "Principals"})
    assert response.status_code == 201, response.text
    return name


def client_for(local_server: LocalServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )


@pytest.fixture
def as_key(local_server: LocalServer) -> Iterator[Callable[[str], httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(key: str) -> httpx.Client:
        clients.append(client_for(local_server, key))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def new_key(api: httpx.Client, base: str, name: str = "ci") -> dict[str, Any]:
    response = api.post(f"{base}/auth/keys", json={"name": name, "description": "for CI"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"token", "id", "name", "description"}
    return body


# --- agents -----------------------------------------------------------------------------------


def test_agent_crud_wire_shapes(api: httpx.Client, org: str) -> None:
    base = f"/organizations/{org}/agents"
    created = api.post(
        base, json={"name": "builder", "description": "builds", "metadata": {"team": "ml"}}
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert set(agent) == AGENT_KEYS
    assert (agent["name"], agent["description"], agent["metadata"]) == (
        "builder",
        "builds",
        {"team": "ml"},
    )
    assert (agent["inline_policy"], agent["inline_policy_updated_at"]) == ("", None)
    assert (agent["created_by_type"], agent["created_by_name"]) == ("user", "admin")
    assert agent["organization_id"] == api.get(f"/organizations/{org}").json()["id"]
    assert agent["last_used_at"] is None
    assert api.get(f"{base}/builder").json() == agent

    error(api.post(base, json={"name": "builder", "description": ""}), 409)
    assert "name" in error(api.post(base, json={"name": "Bad_Name"}), 400)["message"]
    assert "metadata" in error(api.post(base, json={"name": "x1", "metadata": [1]}), 400)["message"]
    error(api.get(f"{base}/nobody"), 404)

    # PUT changes only what it is sent; an empty inline policy clears it.
    updated = api.put(f"{base}/builder", json={"inline_policy": "GetObject()"}).json()
    assert (updated["description"], updated["metadata"]) == ("builds", {"team": "ml"})
    assert updated["inline_policy"] == "GetObject()"
    assert updated["inline_policy_updated_at"] is not None
    updated = api.put(f"{base}/builder", json={"description": "d2", "inline_policy": ""}).json()
    assert (updated["description"], updated["inline_policy"]) == ("d2", "")
    error(api.put(f"{base}/nobody", json={"description": "x"}), 404)
    # Inline policies are validated: the error names the line and column.
    bad = error(api.put(f"{base}/builder", json={"inline_policy": "GetObject()\nNope()"}), 400)
    assert bad["code"] == "invalid_policy"
    assert bad["message"].startswith("inline_policy: line 2, column 1:")
    bad = error(api.post(base, json={"name": "x2", "inline_policy": 'GetObject(path="a'}), 400)
    assert "line 1, column" in bad["message"]
    error(api.get(f"{base}/x2"), 404)
    assert api.get(f"{base}/builder").json()["inline_policy"] == ""
    assert (
        "description" in error(api.put(f"{base}/builder", json={"description": 3}), 400)["message"]
    )

    for name in ("a-two", "a-three"):
        assert api.post(base, json={"name": name, "description": ""}).status_code == 201
    first = api.get(base, params={"amount": 2}).json()
    assert [a["name"] for a in first["results"]] == ["a-three", "a-two"]
    assert first["pagination"] == {"has_more": True, "next_offset": "a-two", "max_per_page": 2}
    rest = api.get(base, params={"amount": 2, "after": "a-two"}).json()
    assert [a["name"] for a in rest["results"]] == ["builder"]
    assert rest["pagination"]["has_more"] is False

    assert api.delete(f"{base}/a-two").status_code == 204
    error(api.delete(f"{base}/a-two"), 404)


def test_role_crud_wire_shapes(api: httpx.Client, org: str) -> None:
    base = f"/organizations/{org}/roles"
    created = api.post(base, json={"name": "deployer", "description": "deploys"})
    assert created.status_code == 201, created.text
    role = created.json()
    assert set(role) == ROLE_KEYS
    assert api.get(f"{base}/deployer").json() == role
    error(api.post(base, json={"name": "deployer", "description": ""}), 409)
    assert "name" in error(api.post(base, json={"description": "x"}), 400)["message"]
    listed = api.get(base).json()
    assert [r["name"] for r in listed["results"]] == ["deployer"]
    assert api.put(f"{base}/deployer", json={"description": "x"}).status_code == 405
    assert api.delete(f"{base}/deployer").status_code == 204
    error(api.get(f"{base}/deployer"), 404)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "prefix"), [("agents", "tak-"), ("roles", "trk-")])
def test_keys_are_shown_once_and_authenticate_as_their_owner(
    api: httpx.Client,
    org: str,
    kind: str,
    prefix: str,
    as_key: Callable[[str], httpx.Client],
    local_server: LocalServer,
) -> None:
    owner = api.post(f"/organizations/{org}/{kind}", json={"name": "bot", "description": ""})
    assert owner.status_code == 201
    base = f"/organizations/{org}/{kind}/bot"
    key = new_key(api, base)
    token = key["token"]
    assert token.startswith(prefix) and (key["name"], key["description"]) == ("ci", "for CI")

    listed = api.get(f"{base}/auth/keys").json()
    assert listed["pagination"]["has_more"] is False
    [entry] = listed["results"]
    assert set(entry) == TOKEN_KEYS
    assert entry["id"] == key["id"] and entry["token_hint"] == token[-4:]
    assert (entry["last_used_at"], entry["revoked_at"]) == (None, None)
    assert "token" not in api.get(f"{base}/auth/keys/{key['id']}").json()

    # The database holds the digest, never the token.
    for path in local_server.data_dir.glob("metadata.db*"):
        assert token.encode() not in path.read_bytes(), path

    bot = as_key(token)
    me = bot.get("/auth/me")
    assert me.status_code == 200, me.text
    principal = me.json()["principal"]
    singular = kind[:-1]
    assert (principal["type"], principal["name"]) == (singular, "bot")
    assert principal["id"] == owner.json()["id"]
    assert me.json()["user"] is None
    assert [o["name"] for o in me.json()["organizations"]] == [org]
    # A new agent or role holds no policy: it may do nothing in its organization until given one.
    refused = bot.get(f"/organizations/{org}/repositories")
    assert refused.status_code == 403 and "ListRepositories" in refused.json()["message"]
    policies = api.get(f"/organizations/{org}/policies").json()["results"]
    read_only = next(p["id"] for p in policies if p["name"] == "ReadOnly")
    attached = api.post(
        f"/organizations/{org}/policies/{read_only}/attachments",
        json={"principal_type": singular, "principal_id": principal["id"]},
    )
    assert attached.status_code == 201, attached.text
    assert bot.get(f"/organizations/{org}/repositories").status_code == 200

    # Its use is recorded, on the key and on its owner.
    used = api.get(f"{base}/auth/keys/{key['id']}").json()
    assert used["last_used_at"] is not None
    assert api.get(base).json()["last_used_at"] is not None

    # Revocation takes effect on the very next request.
    assert api.delete(f"{base}/auth/keys/{key['id']}").status_code == 204
    error(bot.get("/auth/me"), 401)
    assert api.get(f"{base}/auth/keys/{key['id']}").json()["revoked_at"] is not None
    assert api.delete(f"{base}/auth/keys/{key['id']}").status_code == 204
    error(api.delete(f"{base}/auth/keys/nope"), 404)
    error(api.get(f"/organizations/{org}/{kind}/nobody/auth/keys"), 404)
    assert "name" in error(api.post(f"{base}/auth/keys", json={}), 400)["message"]


@pytest.mark.parametrize("kind", ["agents", "roles"])
def test_deleting_the_owner_ends_its_keys_at_once(
    api: httpx.Client, org: str, kind: str, as_key: Callable[[str], httpx.Client]
) -> None:
    api.post(f"/organizations/{org}/{kind}", json={"name": "doomed", "description": ""})
    bot = as_key(new_key(api, f"/organizations/{org}/{kind}/doomed")["token"])
    assert bot.get("/auth/me").status_code == 200
    assert api.delete(f"/organizations/{org}/{kind}/doomed").status_code == 204
    error(bot.get("/auth/me"), 401)
    # A new principal of the same name does not inherit the old keys.
    api.post(f"/organizations/{org}/{kind}", json={"name": "doomed", "description": ""})
    error(bot.get("/auth/me"), 401)


def test_an_agent_acts_only_in_its_own_organization(
    api: httpx.Client,
    org: str,
    unique_name: Callable[..., str],
    as_key: Callable[[str], httpx.Client],
) -> None:
    other = unique_name("org")
    api.post("/organizations", json={"name": other, "display_name": "Other"})
    api.post(
        f"/organizations/{org}/agents",
        json={"name": "local", "description": "", "inline_policy": "ManageAgents()\n"},
    )
    bot = as_key(new_key(api, f"/organizations/{org}/agents/local")["token"])
    assert bot.get(f"/organizations/{org}/agents").status_code == 200
    assert error(bot.get(f"/organizations/{other}"), 404)["code"] == "organization_not_found"
    error(bot.get(f"/organizations/{other}/repositories"), 404)
    assert [o["name"] for o in bot.get("/organizations").json()["results"]] == [org]
    # No organizations, user keys or invitations of its own.
    error(bot.post("/organizations", json={"name": unique_name("org"), "display_name": "x"}), 403)
    error(bot.get("/auth/keys"), 403)
    error(bot.post("/auth/keys", json={"name": "more"}), 403)
    error(bot.get("/invitations"), 403)


def test_user_keys(
    api: httpx.Client, as_key: Callable[[str], httpx.Client], local_server: LocalServer
) -> None:
    created = api.post("/auth/keys", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("tuk-")
    laptop = as_key(token)
    me = laptop.get("/auth/me").json()
    assert set(me) == {"user", "organizations", "has_password", "principal"}
    assert me["user"]["username"] == "admin" and me["principal"]["type"] == "user"
    assert local_server.org in {o["name"] for o in me["organizations"]}
    listed = {k["id"]: k for k in api.get("/auth/keys").json()["results"]}
    entry = listed[created.json()["id"]]
    assert set(entry) == TOKEN_KEYS | {"user_id"}
    assert entry["user_id"] == me["user"]["id"] and entry["last_used_at"] is not None
    assert api.delete(f"/auth/keys/{entry['id']}").status_code == 204
    error(laptop.get("/auth/me"), 401)
    error(api.delete("/auth/keys/not-a-key"), 404)


def test_another_users_key_cannot_be_revoked(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    username = unique_name("keyuser")
    token = subprocess.run(
        [sys.executable, "-m", "lamina_server", "create-user", username, *data_args(local_server)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    with client_for(local_server, token) as other:
        [own] = other.get("/auth/keys").json()["results"]
        error(api.delete(f"/auth/keys/{own['id']}"), 404)
        assert other.get("/auth/me").status_code == 200


def test_an_agents_inline_policy_is_enforced_and_changes_take_effect_at_once(
    api: httpx.Client, org: str, as_key: Callable[[str], httpx.Client]
) -> None:
    created = api.post(
        f"/organizations/{org}/agents",
        json={"name": "reader", "description": "", "inline_policy": "ListRepositories()\n"},
    )
    assert created.status_code == 201, created.text
    base = f"/organizations/{org}/agents/reader"
    bot = as_key(new_key(api, base)["token"])
    assert bot.get(f"/organizations/{org}/repositories").status_code == 200
    effective = api.get(
        f"/organizations/{org}/effective-policies",
        params={"principal_type": "agent", "principal_id": created.json()["id"]},
    ).json()["results"]
    assert [(e["source"], e["source_name"]) for e in effective] == [("inline", "reader")]
    changed = api.put(base, json={"inline_policy": "Deny ListRepositories()\n"})
    assert changed.status_code == 200, changed.text
    refused = bot.get(f"/organizations/{org}/repositories")
    assert refused.status_code == 403 and "Deny ListRepositories" in refused.json()["message"]


def test_a_revocation_in_one_process_is_seen_by_the_next_request_of_another(
    tmp_path: Path,
) -> None:
    first = LocalServer(data_dir=tmp_path / "data")
    first.start()
    second = LocalServer(data_dir=tmp_path / "data")  # a second process on the same data
    try:
        second.start()
        admin = {"Authorization": f"Bearer {first.api_key}"}
        with httpx.Client(base_url=f"{first.endpoint_url}/api/v1", headers=admin) as on_first:
            created = on_first.post("/auth/keys", json={"name": "short-lived"})
            assert created.status_code == 201, created.text
            key = created.json()
        mine = {"Authorization": f"Bearer {key['token']}"}
        with (
            httpx.Client(base_url=f"{first.endpoint_url}/api/v1", headers=mine) as a,
            httpx.Client(base_url=f"{second.endpoint_url}/api/v1", headers=mine) as b,
        ):
            for _ in range(3):  # both processes now hold the key as good
                assert a.get("/auth/me").status_code == 200
                assert b.get("/auth/me").status_code == 200
            assert b.delete(f"/auth/keys/{key['id']}").status_code == 204
            assert a.get("/auth/me").status_code == 401
            assert b.get("/auth/me").status_code == 401
    finally:
        second.stop()
        first.stop()
