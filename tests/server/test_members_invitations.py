"""Members (roles, the last admin), invitations (create, list, revoke, accept, decline),
organization deletion and name checks, over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing import LocalServer
from tests.postgres import data_args

INVITATION_KEYS = {
    "id",
    "organization_id",
    "email",
    "invited_by",
    "status",
    "created_at",
    "expires_at",
    "role",
}


def error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"message", "code", "request_id"}
    return body


@pytest.fixture
def org(api: httpx.Client, unique_name: Callable[..., str]) -> str:
    name = unique_name("org")
    response = api.post("/organizations", json={"name": name, "display_name": "Members"})
    assert response.status_code == 201, response.text
    return name


class Users:
    """Users made with ``create-user``, each with a client on its own key."""

    def __init__(self, local_server: LocalServer, unique_name: Callable[..., str]) -> None:
        self.local_server = local_server
        self.unique_name = unique_name
        self.clients: list[httpx.Client] = []

    def create(self, email: str = "") -> tuple[str, httpx.Client]:
        username = self.unique_name("user")
        command = [sys.executable, "-m", "lamina_server", "create-user", username]
        command += ["--email", email, *data_args(self.local_server)]
        key = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        client = httpx.Client(
            base_url=f"{self.local_server.endpoint_url}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )
        self.clients.append(client)
        return username, client


@pytest.fixture
def users(local_server: LocalServer, unique_name: Callable[..., str]) -> Iterator[Users]:
    made = Users(local_server, unique_name)
    yield made
    for client in made.clients:
        client.close()


def user_id(client: httpx.Client) -> str:
    value: str = client.get("/auth/me").json()["user"]["id"]
    return value


# --- members ----------------------------------------------------------------------------------


def test_the_last_admin_cannot_be_removed(api: httpx.Client, org: str, users: Users) -> None:
    members = f"/organizations/{org}/members"
    name, member = users.create()
    added = api.post(members, json={"username": name})
    assert added.status_code == 201 and added.json()["role"] == "member"
    admin_id = user_id(api)
    assert error(api.delete(f"{members}/{admin_id}"), 409)["code"] == "last_admin"

    other_name, other = users.create()
    by_id = api.post(members, json={"user_id": user_id(other), "role": "admin"})
    assert by_id.status_code == 201 and by_id.json()["role"] == "admin"
    assert (
        "role" in error(api.post(members, json={"username": name, "role": "owner"}), 400)["message"]
    )
    # Two admins: either may go, but not both.
    assert api.delete(f"{members}/{admin_id}").status_code == 204
    error(api.get(f"/organizations/{org}"), 404)
    assert error(other.delete(f"{members}/{user_id(other)}"), 409)["code"] == "last_admin"
    assert other.delete(f"{members}/{user_id(member)}").status_code == 204
    assert error(other.delete(f"{members}/{user_id(other)}"), 409)["code"] == "last_member"
    assert [m["username"] for m in other.get(members).json()["results"]] == [other_name]


# --- invitations ------------------------------------------------------------------------------


def test_invite_by_username_then_accept(api: httpx.Client, org: str, users: Users) -> None:
    name, invitee = users.create()
    created = api.post(f"/organizations/{org}/invitations", json={"username": name})
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert set(invitation) == INVITATION_KEYS
    assert (invitation["status"], invitation["role"]) == ("pending", "member")
    assert invitation["invited_by"] == user_id(api)
    assert [i["id"] for i in api.get(f"/organizations/{org}/invitations").json()["results"]] == [
        invitation["id"]
    ]
    # A second pending invitation for the same user is a conflict.
    error(api.post(f"/organizations/{org}/invitations", json={"username": name}), 409)

    mine = invitee.get("/invitations").json()["results"]
    assert [i["id"] for i in mine] == [invitation["id"]]
    assert set(mine[0]) == INVITATION_KEYS | {
        "organization_name",
        "organization_display_name",
        "inviter_name",
    }
    assert (mine[0]["organization_name"], mine[0]["inviter_name"]) == (org, "admin")
    # Nobody else can answer it.
    error(api.post(f"/invitations/{invitation['id']}/accept"), 404)
    error(invitee.get(f"/organizations/{org}"), 404)

    accepted = invitee.post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200 and accepted.json() == {"status": "accepted"}
    assert invitee.get(f"/organizations/{org}").status_code == 200
    assert name in {
        m["username"] for m in api.get(f"/organizations/{org}/members").json()["results"]
    }
    assert error(invitee.post(f"/invitations/{invitation['id']}/decline"), 409)["code"] == (
        "invitation_not_pending"
    )
    assert invitee.get("/invitations").json()["results"] == []
    assert api.get(f"/organizations/{org}/invitations").json()["results"] == []
    # A member cannot be invited again.
    error(api.post(f"/organizations/{org}/invitations", json={"username": name}), 409)


def test_invite_by_email_then_decline(api: httpx.Client, org: str, users: Users) -> None:
    email = f"{users.unique_name('mail')}@example.com"
    _, invitee = users.create(email=email)
    created = api.post(f"/organizations/{org}/invitations", json={"email": email})
    assert created.status_code == 201, created.text
    invitation_id = created.json()["id"]
    assert created.json()["email"] == email
    assert [i["id"] for i in invitee.get("/invitations").json()["results"]] == [invitation_id]
    declined = invitee.post(f"/invitations/{invitation_id}/decline")
    assert declined.json() == {"status": "declined"}
    error(invitee.get(f"/organizations/{org}"), 404)
    error(invitee.post(f"/invitations/{invitation_id}/accept"), 409)


def test_revoked_invitation_is_gone(api: httpx.Client, org: str, users: Users) -> None:
    name, invitee = users.create()
    invitation_id = api.post(f"/organizations/{org}/invitations", json={"username": name}).json()[
        "id"
    ]
    assert api.delete(f"/organizations/{org}/invitations/{invitation_id}").status_code == 204
    assert error(api.delete(f"/organizations/{org}/invitations/{invitation_id}"), 409)["code"] == (
        "invitation_not_pending"
    )
    assert error(invitee.post(f"/invitations/{invitation_id}/accept"), 410)["code"] == (
        "invitation_gone"
    )
    assert invitee.get("/invitations").json()["results"] == []
    error(api.delete(f"/organizations/{org}/invitations/nope"), 404)


def test_bad_invitations(api: httpx.Client, org: str) -> None:
    base = f"/organizations/{org}/invitations"
    assert "email" in error(api.post(base, json={}), 400)["message"]
    assert "email" in error(api.post(base, json={"email": "not-an-address"}), 400)["message"]
    assert error(api.post(base, json={"username": "nobody-x1"}), 404)["code"] == "user_not_found"
    # An address no user has yet can be invited (it shows up when a user with it exists).
    assert api.post(base, json={"email": "future@example.com"}).status_code == 201


# --- organizations ----------------------------------------------------------------------------


def test_check_name(api: httpx.Client, org: str, unique_name: Callable[..., str]) -> None:
    def check(name: str) -> dict[str, object]:
        response = api.get("/organizations/check-name", params={"name": name})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    assert check(unique_name("free")) == {"available": True, "reason": ""}
    assert check(org) == {"available": False, "reason": "taken"}
    assert check("Bad_Name") == {"available": False, "reason": "invalid"}
    assert check("check-name") == {"available": False, "reason": "reserved"}
    assert "name" in error(api.get("/organizations/check-name"), 400)["message"]


def test_delete_organization(
    api: httpx.Client, org: str, users: Users, local_server: LocalServer
) -> None:
    name, member = users.create()
    api.post(f"/organizations/{org}/members", json={"username": name})
    invited_name, invitee = users.create()
    invitation = api.post(f"/organizations/{org}/invitations", json={"username": invited_name})
    api.post(f"/organizations/{org}/agents", json={"name": "bot", "description": ""})
    token = api.post(f"/organizations/{org}/agents/bot/auth/keys", json={"name": "k"}).json()[
        "token"
    ]
    assert api.delete(f"/organizations/{org}").status_code == 204
    error(api.get(f"/organizations/{org}"), 404)
    error(member.get(f"/organizations/{org}/members"), 404)
    assert org not in {o["name"] for o in api.get("/organizations").json()["results"]}
    with httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
    ) as bot:
        error(bot.get("/auth/me"), 401)
    error(invitee.post(f"/invitations/{invitation.json()['id']}/accept"), 410)
    error(api.delete(f"/organizations/{org}"), 404)
    # The name is free again.
    assert api.get("/organizations/check-name", params={"name": org}).json()["available"]
    recreated = api.post("/organizations", json={"name": org, "display_name": "Again"})
    assert recreated.status_code == 201
    assert api.get(f"/organizations/{org}/agents").json()["results"] == []


def test_a_deleted_organization_stops_resolving_in_every_process(tmp_path: Path) -> None:
    first = LocalServer(data_dir=tmp_path / "data")
    first.start()
    second = LocalServer(data_dir=tmp_path / "data")
    try:
        second.start()
        admin = {"Authorization": f"Bearer {first.api_key}"}
        with (
            httpx.Client(base_url=f"{first.endpoint_url}/api/v1", headers=admin) as a,
            httpx.Client(base_url=f"{second.endpoint_url}/api/v1", headers=admin) as b,
        ):
            assert a.post(
                "/organizations", json={"name": "doomed-org", "display_name": "D"}
            ).is_success
            assert b.get("/organizations/doomed-org").status_code == 200  # cached there now
            assert a.delete("/organizations/doomed-org").status_code == 204
            assert b.get("/organizations/doomed-org").status_code == 404
    finally:
        second.stop()
        first.stop()
