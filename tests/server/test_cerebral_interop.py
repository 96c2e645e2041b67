"""The official ``cerebral-sdk`` (0.8.0) against the reference server: it sends Rego (``rego``)
where tilde sends ``policy_text``; a policy it creates is validated, stored, attached and
enforced as Rego."""

from __future__ import annotations

import httpx
import pytest

from lamina.testing import LocalServer
from tests.server.members import Member

cerebral = pytest.importorskip("cerebral")

READER = (
    "package lamina\n\n"
    'allow if input.action in {"GetRepository", "ListObjects", "GetObject", "ListCommits"}\n'
)


def test_cerebral_creates_validates_and_attaches_a_rego_policy(
    local_server: LocalServer, api: httpx.Client, member: Member
) -> None:
    client = cerebral.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)
    policies = client.organization(member.org).policies
    bad = policies.validate("package lamina\n\nallow if {")
    assert bad.valid is False and bad.errors and bad.errors[0].line >= 1
    assert policies.validate(READER).valid is True
    created = policies.create("cerebral-reader", READER, description="read only, in Rego")
    assert created.name == "cerebral-reader" and created.rego == READER
    policies.attach(created.id, "user", member.user_id)
    attached = {(a.policy_id, a.principal_id) for a in policies.list_attachments()}
    assert (created.id, member.user_id) in attached
    # Enforced as Rego: without the ReadWrite a new member gets, the member can read what the
    # Rego policy allows and nothing more.
    read_write = next(
        p["id"]
        for p in api.get(f"{member.o}/policies").json()["results"]
        if p["name"] == "ReadWrite"
    )
    api.delete(
        f"{member.o}/policies/{read_write}/attachments",
        params={"principal_type": "user", "principal_id": member.user_id},
    )
    repo = f"{member.o}/repositories/data"
    assert member.client.get(f"{repo}/objects").status_code == 200
    denied = member.client.post(f"{repo}/sessions")
    assert denied.status_code == 403 and "CreateSession" in denied.json()["message"]
