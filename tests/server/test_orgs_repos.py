"""Organizations, members and repositories over real HTTP, including every bad input."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import httpx
import pytest

from lamina.testing import LocalServer
from tests.postgres import data_args

ORG_KEYS = {"id", "name", "display_name", "created_at"}
REPO_KEYS = {
    "id",
    "organization_id",
    "name",
    "description",
    "visibility",
    "retention_days",
    "session_max_duration_days",
    "created_by_type",
    "created_by",
    "created_at",
    "approval_required_for",
    "approval_paths",
}


def error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def parse_time(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def create_user(local_server: LocalServer, username: str) -> str:
    """A new user (no organization) made with ``create-user``; returns its API key."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "create-user",
            username,
            *data_args(local_server),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def outsider_name() -> str:
    return f"outsider-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def outsider(local_server: LocalServer, outsider_name: str) -> Iterator[httpx.Client]:
    """A second user who belongs to no organization (unless a test adds it)."""
    with httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {create_user(local_server, outsider_name)}"},
        timeout=30.0,
    ) as client:
        yield client


@pytest.fixture
def org(api: httpx.Client, unique_name: Callable[..., str]) -> str:
    name = unique_name("org")
    response = api.post("/organizations", json={"name": name, "display_name": "Test Org"})
    assert response.status_code == 201, response.text
    return name


# --- organizations ----------------------------------------------------------------------------


def test_create_get_list_organization(api: httpx.Client, unique_name: Callable[..., str]) -> None:
    name = unique_name("org")
    created = api.post("/organizations", json={"name": name, "display_name": "Acme Inc."})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == ORG_KEYS
    assert body["name"] == name and body["display_name"] == "Acme Inc."
    parse_time(body["created_at"])

    fetched = api.get(f"/organizations/{name}")
    assert fetched.status_code == 200
    assert fetched.json() == body

    listed = api.get("/organizations")
    assert listed.status_code == 200
    assert set(listed.json()) == {"results"}
    assert body in listed.json()["results"]


def test_creator_is_the_only_member(api: httpx.Client, org: str) -> None:
    response = api.get(f"/organizations/{org}/members")
    assert response.status_code == 200
    members = response.json()["results"]
    assert len(members) == 1
    member = members[0]
    assert set(member) == {
        "organization_id",
        "user_id",
        "username",
        "full_name",
        "email",
        "joined_at",
        "role",
    }
    assert (member["username"], member["role"]) == ("admin", "admin")
    assert member["organization_id"] == api.get(f"/organizations/{org}").json()["id"]


def test_duplicate_organization_is_409(api: httpx.Client, org: str) -> None:
    body = error(api.post("/organizations", json={"name": org, "display_name": "again"}), 409)
    assert org in body["message"]


@pytest.mark.parametrize(
    "name", ["A-upper", "x", "-leading-dash", "has_underscore", "has space", "a" * 64, "", "é-org"]
)
def test_bad_organization_names_are_400(api: httpx.Client, name: str) -> None:
    body = error(api.post("/organizations", json={"name": name, "display_name": "x"}), 400)
    assert body["message"].startswith("name: ")


@pytest.mark.parametrize(
    "payload",
    [{"name": "ok-name"}, {"display_name": "x"}, {"name": 12, "display_name": "x"}],
)
def test_organization_body_errors_name_the_field(api: httpx.Client, payload: dict) -> None:
    body = error(api.post("/organizations", json=payload), 400)
    missing = {"name", "display_name"} - set(payload)
    field = missing.pop() if missing else "name"
    assert body["message"].startswith(f"{field}: ")


def test_unknown_organization_is_404(api: httpx.Client) -> None:
    assert error(api.get("/organizations/does-not-exist-1"), 404)["code"] == (
        "organization_not_found"
    )
    error(api.get("/organizations/does-not-exist-1/members"), 404)
    error(api.get("/organizations/does-not-exist-1/repositories"), 404)


def test_outsider_cannot_see_other_organizations(
    api: httpx.Client, outsider: httpx.Client, org: str, unique_name: Callable[..., str]
) -> None:
    repo = unique_name("repo")
    assert api.post(f"/organizations/{org}/repositories", json={"name": repo}).status_code == 201
    assert org not in {o["name"] for o in outsider.get("/organizations").json()["results"]}
    for method, path in [
        ("GET", f"/organizations/{org}"),
        ("GET", f"/organizations/{org}/members"),
        ("GET", f"/organizations/{org}/repositories"),
        ("POST", f"/organizations/{org}/repositories"),
        ("GET", f"/organizations/{org}/repositories/{repo}"),
        ("PUT", f"/organizations/{org}/repositories/{repo}"),
        ("DELETE", f"/organizations/{org}/repositories/{repo}"),
        ("POST", f"/organizations/{org}/repositories/{repo}/sessions"),
        ("GET", f"/organizations/{org}/repositories/{repo}/log"),
    ]:
        json = {"name": unique_name("r")} if method in ("POST", "PUT") else None
        response = outsider.request(method, path, json=json)
        # A non-member cannot tell a hidden organization from a missing one.
        assert error(response, 404)["code"] == "organization_not_found", (method, path)
    # ...and nothing was changed on the outsider's behalf.
    assert api.get(f"/organizations/{org}/repositories/{repo}").status_code == 200

    # The outsider's own organization is invisible to the admin in turn.
    own = unique_name("org")
    assert (
        outsider.post("/organizations", json={"name": own, "display_name": "x"}).status_code == 201
    )
    assert [o["name"] for o in outsider.get("/organizations").json()["results"]] == [own]
    error(api.get(f"/organizations/{own}"), 404)


def test_add_and_remove_members(
    api: httpx.Client, outsider: httpx.Client, outsider_name: str, org: str
) -> None:
    error(outsider.get(f"/organizations/{org}"), 404)
    added = api.post(f"/organizations/{org}/members", json={"username": outsider_name})
    assert added.status_code == 201
    member = added.json()
    assert member["username"] == outsider_name
    assert outsider.get(f"/organizations/{org}").status_code == 200
    usernames = {m["username"] for m in api.get(f"/organizations/{org}/members").json()["results"]}
    assert usernames == {"admin", outsider_name}
    # Already a member; unknown users; no name at all.
    error(api.post(f"/organizations/{org}/members", json={"username": outsider_name}), 409)
    error(api.post(f"/organizations/{org}/members", json={"username": "nobody-x1"}), 404)
    error(api.post(f"/organizations/{org}/members", json={}), 400)

    removed = api.delete(f"/organizations/{org}/members/{member['user_id']}")
    assert removed.status_code == 204
    error(outsider.get(f"/organizations/{org}"), 404)  # access ends at once
    error(api.delete(f"/organizations/{org}/members/{member['user_id']}"), 404)
    admin_id = api.get(f"/organizations/{org}/members").json()["results"][0]["user_id"]
    assert error(api.delete(f"/organizations/{org}/members/{admin_id}"), 409)["code"] == (
        "last_member"
    )
    # A member can be added by id too (the cerebral SDK's body).
    by_id = api.post(f"/organizations/{org}/members", json={"user_id": member["user_id"]})
    assert by_id.status_code == 201


# --- repositories -----------------------------------------------------------------------------


def test_create_repository_defaults(
    api: httpx.Client, org: str, unique_name: Callable[..., str]
) -> None:
    name = unique_name("repo")
    response = api.post(f"/organizations/{org}/repositories", json={"name": name})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == REPO_KEYS
    assert body["name"] == name
    assert body["description"] == ""
    assert body["visibility"] == "private"
    assert body["retention_days"] == 14
    assert body["session_max_duration_days"] is None
    assert body["approval_required_for"] == "none" and body["approval_paths"] == []
    assert body["created_by_type"] == "user"
    assert body["organization_id"] == api.get(f"/organizations/{org}").json()["id"]
    members = api.get(f"/organizations/{org}/members").json()["results"]
    assert body["created_by"] == members[0]["user_id"]
    parse_time(body["created_at"])
    assert api.get(f"/organizations/{org}/repositories/{name}").json() == body


def test_create_repository_with_every_setting(
    api: httpx.Client, org: str, unique_name: Callable[..., str]
) -> None:
    name = unique_name("repo")
    payload = {
        "name": name,
        "description": "data for the thing",
        "visibility": "public",
        "retention_days": 30,
        "session_max_duration_days": 3,
    }
    body = api.post(f"/organizations/{org}/repositories", json=payload).json()
    assert {key: body[key] for key in payload} == payload


def test_new_repository_has_its_initial_commit(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    log = api.get(f"/organizations/{org}/repositories/{name}/log")
    assert log.status_code == 200
    commits = log.json()["results"]
    assert len(commits) == 1
    assert commits[0]["parents"] == []


def test_duplicate_repository_is_409(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    body = error(api.post(f"/organizations/{org}/repositories", json={"name": name}), 409)
    assert name in body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "Upper"}, "name"),
        ({"name": "a"}, "name"),
        ({"name": "ok-name", "visibility": "secret"}, "visibility"),
        ({"name": "ok-name", "retention_days": 0}, "retention_days"),
        ({"name": "ok-name", "retention_days": "long"}, "retention_days"),
        ({"name": "ok-name", "session_max_duration_days": -1}, "session_max_duration_days"),
        ({"name": "ok-name", "description": 5}, "description"),
    ],
)
def test_bad_repository_input_is_400(
    api: httpx.Client, org: str, payload: dict, field: str
) -> None:
    body = error(api.post(f"/organizations/{org}/repositories", json=payload), 400)
    assert body["message"].startswith(f"{field}: ")
    listed = api.get(f"/organizations/{org}/repositories").json()["results"]
    assert listed == []  # nothing was created


def test_list_repositories_paginates_by_name(api: httpx.Client, org: str) -> None:
    names = [f"repo-{i:02}" for i in range(5)]
    for name in reversed(names):
        assert (
            api.post(f"/organizations/{org}/repositories", json={"name": name}).status_code == 201
        )
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"amount": 2}
        if after is not None:
            params["after"] = after
        response = api.get(f"/organizations/{org}/repositories", params=params)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"results", "pagination"}
        pagination = body["pagination"]
        assert set(pagination) == {"has_more", "next_offset", "max_per_page"}
        assert pagination["max_per_page"] == 2
        seen += [repo["name"] for repo in body["results"]]
        pages += 1
        if not pagination["has_more"]:
            assert pagination["next_offset"] == ""
            break
        after = pagination["next_offset"]
    assert seen == names
    assert pages == 3
    everything = api.get(f"/organizations/{org}/repositories").json()
    assert [repo["name"] for repo in everything["results"]] == names
    assert everything["pagination"] == {"has_more": False, "next_offset": "", "max_per_page": 100}


@pytest.mark.parametrize("amount", ["0", "1001", "-5", "ten", "1.5"])
def test_list_repositories_amount_out_of_range(api: httpx.Client, org: str, amount: str) -> None:
    body = error(api.get(f"/organizations/{org}/repositories", params={"amount": amount}), 400)
    assert body["message"].startswith("amount: ")


def test_update_repository_is_partial(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    path = f"/organizations/{org}/repositories/{name}"
    original = api.get(path).json()

    response = api.put(path, json={"description": "new words"})
    assert response.status_code == 200
    updated = response.json()
    assert updated == {**original, "description": "new words"}

    updated = api.put(path, json={"visibility": "public", "retention_days": 7}).json()
    assert updated == {
        **original,
        "description": "new words",
        "visibility": "public",
        "retention_days": 7,
    }
    assert api.put(path, json={}).json() == updated
    assert (
        api.put(path, json={"session_max_duration_days": 2}).json()["session_max_duration_days"]
        == 2
    )
    assert api.get(path).json()["session_max_duration_days"] == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"visibility": "hidden"}, "visibility"),
        ({"retention_days": -3}, "retention_days"),
        ({"retention_days": 10**9}, "retention_days"),
    ],
)
def test_bad_update_is_400_and_changes_nothing(
    api: httpx.Client, repository: str, payload: dict, field: str
) -> None:
    org, name = repository.split("/")
    path = f"/organizations/{org}/repositories/{name}"
    before = api.get(path).json()
    body = error(api.put(path, json=payload), 400)
    assert body["message"].startswith(f"{field}: ")
    assert api.get(path).json() == before


def test_delete_repository_is_soft_and_frees_the_name(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    path = f"/organizations/{org}/repositories/{name}"
    original = api.get(path).json()
    deleted = api.delete(path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert error(api.get(path), 404)["code"] == "repository_not_found"
    error(api.delete(path), 404)
    error(api.put(path, json={"description": "x"}), 404)
    error(api.post(f"{path}/sessions"), 404)
    listed = api.get(f"/organizations/{org}/repositories", params={"amount": 1000}).json()
    assert name not in {repo["name"] for repo in listed["results"]}

    recreated = api.post(f"/organizations/{org}/repositories", json={"name": name})
    assert recreated.status_code == 201
    assert recreated.json()["id"] != original["id"]
    log = api.get(f"{path}/log").json()["results"]
    assert len(log) == 1  # a fresh history, not the deleted repository's


def test_unknown_repository_is_404(api: httpx.Client, org: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        json = {} if method == "PUT" else None
        response = api.request(method, f"/organizations/{org}/repositories/nope", json=json)
        assert error(response, 404)["code"] == "repository_not_found"
