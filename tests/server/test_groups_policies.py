"""Groups, policies and attachments on the wire: the shapes the tilde SDK reads, validation
errors with line and column, effective groups and policies with their sources, cycles refused,
built-ins listed and attachable but never editable."""

from __future__ import annotations

import httpx
import pytest

from lamina.testing import LocalServer
from tests.server.members import Member

GROUP_KEYS = {
    "id",
    "organization_id",
    "name",
    "description",
    "created_by_type",
    "created_by",
    "created_at",
}


def _group(api: httpx.Client, o: str, name: str) -> str:
    response = api.post(f"{o}/groups", json={"name": name, "description": f"the {name}s"})
    assert response.status_code == 201, response.text
    assert set(response.json()) == GROUP_KEYS
    group_id: str = response.json()["id"]
    return group_id


def _add(api: httpx.Client, o: str, group_id: str, kind: str, subject: str) -> httpx.Response:
    return api.post(
        f"{o}/groups/{group_id}/members", json={"subject_type": kind, "subject_id": subject}
    )


def test_groups_crud_members_and_pagination(api: httpx.Client, member: Member) -> None:
    o = member.o
    ids = [_group(api, o, name) for name in ("alpha", "beta", "gamma")]
    assert api.post(f"{o}/groups", json={"name": "alpha"}).status_code == 409
    first = api.get(f"{o}/groups", params={"amount": 2}).json()
    assert [g["name"] for g in first["results"]] == ["alpha", "beta"]
    assert first["pagination"]["has_more"] is True
    rest = api.get(
        f"{o}/groups", params={"amount": 2, "after": first["pagination"]["next_offset"]}
    ).json()
    assert [g["name"] for g in rest["results"]] == ["gamma"]
    assert rest["pagination"] == {"has_more": False, "next_offset": "", "max_per_page": 2}

    added = _add(api, o, ids[0], "user", member.user_id)
    assert added.status_code == 201, added.text
    assert added.json()["subject_id"] == member.user_id
    assert _add(api, o, ids[0], "user", member.user_id).status_code == 409
    assert _add(api, o, ids[0], "user", "not-a-member").status_code == 404
    assert _add(api, o, ids[0], "agent", "an-agent-id").status_code == 201  # taken as given
    detail = api.get(f"{o}/groups/{ids[0]}").json()
    assert set(detail) == {"group", "members", "attachments"}
    assert {(m["subject_type"], m["subject_id"]) for m in detail["members"]} == {
        ("user", member.user_id),
        ("agent", "an-agent-id"),
    }
    user_row = next(m for m in detail["members"] if m["subject_type"] == "user")
    assert set(user_row) == {"subject_type", "subject_id", "display_name", "username", "added_at"}
    assert user_row["username"]

    renamed = api.put(f"{o}/groups/{ids[0]}", json={"description": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["description"] == "renamed"
    assert renamed.json()["name"] == "alpha"
    removed = api.delete(
        f"{o}/groups/{ids[0]}/members",
        params={"subject_type": "user", "subject_id": member.user_id},
    )
    assert removed.status_code == 204
    assert api.delete(f"{o}/groups/{ids[1]}").status_code == 204
    assert api.get(f"{o}/groups/{ids[1]}").status_code == 404


def test_nested_groups_effective_groups_and_cycles(api: httpx.Client, member: Member) -> None:
    o = member.o
    team, dept, company = (_group(api, o, name) for name in ("team", "dept", "company"))
    assert _add(api, o, team, "user", member.user_id).status_code == 201
    assert _add(api, o, dept, "group", team).status_code == 201
    assert _add(api, o, company, "group", dept).status_code == 201

    effective = api.get(
        f"{o}/effective-groups", params={"principal_type": "user", "principal_id": member.user_id}
    )
    assert effective.status_code == 200, effective.text
    assert {
        (g["group_name"], g["source"], g["source_name"]) for g in effective.json()["results"]
    } == {("team", "direct", ""), ("dept", "group", "team"), ("company", "group", "dept")}
    assert set(effective.json()["results"][0]) == {
        "group_id",
        "group_name",
        "description",
        "source",
        "source_name",
    }

    cycle = _add(api, o, team, "group", company)
    assert cycle.status_code == 409
    assert cycle.json()["code"] == "group_cycle"
    assert "team -> company -> dept -> team" in cycle.json()["message"]
    assert _add(api, o, team, "group", team).status_code == 409
    assert api.get(f"{o}/effective-groups").status_code == 400


def test_policies_validate_create_attach_and_effective(api: httpx.Client, member: Member) -> None:
    o = member.o
    checked = api.post(
        f"{o}/policies:validate", json={"policy_text": "ListObjects()\nGetObjekt()\n"}
    )
    assert checked.status_code == 200, checked.text
    result = checked.json()
    assert result["valid"] is False
    assert [(e["line"], e["column"]) for e in result["errors"]] == [(2, 1)]
    assert "GetObjekt" in result["errors"][0]["message"]
    rego_checked = api.post(f"{o}/policies:validate", json={"rego": "GetObject()"}).json()
    assert rego_checked["valid"] is False and rego_checked["errors"][0]["line"] == 1
    assert api.post(
        f"{o}/policies:validate",
        json={"rego": 'package lamina\n\nallow if input.action == "GetObject"\n'},
    ).json() == {"valid": True, "errors": []}
    refused = api.post(f"{o}/policies", json={"name": "bad", "policy_text": "Nope()"})
    assert refused.status_code == 400 and "line 1, column 1" in refused.json()["message"]

    created = api.post(
        f"{o}/policies",
        json={"name": "readers", "policy_text": "GetObject()\n", "description": "read"},
    )
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["is_builtin"] is False and policy["policy_text"] == "GetObject()\n"
    assert api.post(f"{o}/policies", json={"name": "readers", "policy_text": ""}).status_code == 409

    group = _group(api, o, "readers")
    assert _add(api, o, group, "user", member.user_id).status_code == 201
    base = f"{o}/policies/{policy['id']}/attachments"
    attached = api.post(base, json={"principal_type": "group", "principal_id": group})
    assert attached.status_code == 201, attached.text
    assert attached.json()["principal_name"] == "readers"
    assert (
        api.post(base, json={"principal_type": "group", "principal_id": group}).status_code == 409
    )

    detail = api.get(f"{o}/policies/{policy['id']}").json()
    assert detail["policy"]["name"] == "readers"
    assert [a["principal_id"] for a in detail["attachments"]] == [group]
    listed = api.get(f"{o}/policies").json()["results"]
    by_name = {p["name"]: p for p in listed}
    assert {"OrgAdmin", "ReadOnly", "ReadWrite", "readers"} <= set(by_name)
    assert by_name["readers"]["attachment_count"] == 1
    assert by_name["ReadWrite"]["is_builtin"] is True
    assert by_name["ReadWrite"]["attachment_count"] == 1  # the member's default

    effective = api.get(f"{o}/effective-policies", params={"user_id": member.user_id}).json()
    assert {
        (p["policy_name"], p["is_builtin"], p["source"], p["source_name"])
        for p in effective["results"]
    } == {("ReadWrite", True, "direct", ""), ("readers", False, "group", "readers")}
    everything = api.get(f"{o}/attachments").json()["results"]
    assert {(a["policy_name"], a["principal_type"]) for a in everything} == {
        ("OrgAdmin", "user"),
        ("ReadWrite", "user"),
        ("readers", "group"),
    }

    detached = api.delete(base, params={"principal_type": "group", "principal_id": group})
    assert detached.status_code == 204
    assert (
        api.delete(base, params={"principal_type": "group", "principal_id": group}).status_code
        == 404
    )
    assert api.put(f"{o}/policies/{policy['id']}", json={"policy_text": "Oops("}).status_code == 400
    updated = api.put(f"{o}/policies/{policy['id']}", json={"policy_text": "ListObjects()"})
    assert updated.status_code == 200 and updated.json()["policy_text"] == "ListObjects()"
    assert api.delete(f"{o}/policies/{policy['id']}").status_code == 204
    assert api.get(f"{o}/policies/{policy['id']}").status_code == 404


def test_builtins_are_attachable_but_not_editable(api: httpx.Client, member: Member) -> None:
    o = member.o
    builtins = {p["name"]: p for p in api.get(f"{o}/policies").json()["results"] if p["is_builtin"]}
    read_only = builtins["ReadOnly"]["id"]
    detail = api.get(f"{o}/policies/{read_only}").json()["policy"]
    assert detail["is_builtin"] is True and "GetObject()" in detail["policy_text"]
    changed = api.put(f"{o}/policies/{read_only}", json={"policy_text": "GetObject()"})
    assert changed.status_code == 400 and changed.json()["code"] == "builtin_policy"
    assert api.delete(f"{o}/policies/{read_only}").status_code == 400
    assert (
        api.post(f"{o}/policies", json={"name": "OrgAdmin", "policy_text": ""}).status_code == 409
    )
    attached = api.post(
        f"{o}/policies/{read_only}/attachments",
        json={"principal_type": "user", "principal_id": member.user_id},
    )
    assert attached.status_code == 201 and attached.json()["is_builtin"] is True
    generated = api.post(
        f"{o}/policies:generate", json={"prompt": "read-only access to all repositories"}
    )
    assert generated.status_code == 200, generated.text
    text = generated.json()["policy_text"]
    assert "GetObject" in text and "PutObject" not in text.replace("Deny PutObject", "")
    assert api.post(f"{o}/policies:validate", json={"policy_text": text}).json()["valid"]


def test_the_tilde_sdk_reads_groups_and_policies(local_server: LocalServer, member: Member) -> None:
    tilde = pytest.importorskip("tilde")
    client = tilde.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)
    org = client.organizations.get(member.org)
    group = org.groups.create("sdk-team", description="made by the SDK")
    added = group.members.create(subject_type="user", subject_id=member.user_id)
    assert added.subject_id == member.user_id
    policy = org.policies.create("sdk-policy", "GetObject()\n")
    policy.attach(principal_type="group", principal_id=group.id)
    assert org.policies.validate("Nope()").valid is False
    names = {(p.policy_name, p.source) for p in org.policies.effective(user_id=member.user_id)}
    assert ("sdk-policy", "group") in names
    assert [g.group_name for g in org.groups.effective("user", member.user_id)] == ["sdk-team"]
    assert any(p.name == "sdk-policy" for p in org.policies.list())
