"""The Velerian API (/api/v2) against the real server, driven by the official velerian-sdk
unchanged: keys minted with a Lamina user key, ABPs created and deployed, governed invokes
(allowed, denied by policy, held for a human and approved), runs, evidence exports, the audit
log, the usage summary, and each error status mapped to the SDK's typed errors."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any

import httpx
import pytest
from velerian_sdk import (
    VelerianAuthError,
    VelerianClient,
    VelerianConflictError,
    VelerianForbiddenError,
    VelerianNotFoundError,
    VelerianValidationError,
)

from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.conftest import RepoHttp
from tests.server.members import Member

ALL = ["read", "write"]
_CANNOT_RUN = BubblewrapRunner().check()
needs_sandboxes = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")


def mint(server: LocalServer, user_key: str, scopes: list[str], **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{server.endpoint_url}/api/v2/api-keys",
        headers={"Authorization": f"Bearer {user_key}"},
        json={"name": "test", "scopes": scopes, **extra},
        timeout=30.0,
    )


def key_for(server: LocalServer, user_key: str, scopes: list[str], org: str) -> str:
    response = mint(server, user_key, scopes, organization=org)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.fixture
def velerian(local_server: LocalServer) -> Callable[..., VelerianClient]:
    """``velerian(scopes, org=...)``: an SDK client with a fresh key of the bootstrap admin."""
    made: list[VelerianClient] = []

    def make(scopes: list[str] = ALL, org: str | None = None) -> VelerianClient:
        key = key_for(local_server, local_server.api_key, scopes, org or local_server.org)
        client = VelerianClient(api_key=key, base_url=local_server.endpoint_url, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def create_abp(client: VelerianClient, repository: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "report", "repository": repository, "command": ["true"], **fields}
    created = client.post("abps", json=body)
    assert created.status_code == 201
    abp: dict[str, Any] = created.json()
    assert abp["status"] == "draft" and abp["repository"] == repository
    return abp


def deployed_abp(client: VelerianClient, repository: str, **fields: Any) -> str:
    abp = create_abp(client, repository, **fields)
    deployed = client.post(f"abps/{abp['id']}/deploy").json()
    assert deployed["status"] == "deployed"
    abp_id: str = abp["id"]
    return abp_id


# --- keys -------------------------------------------------------------------------------------


def test_a_user_key_mints_lists_and_revokes_velerian_keys(local_server: LocalServer) -> None:
    minted = mint(local_server, local_server.api_key, ["runs:read"], organization=local_server.org)
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["key"].startswith("vk_live_") and body["scopes"] == ["runs:read"]
    assert body["organization"] == local_server.org and body["name"] == "test"
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    listed = httpx.get(f"{local_server.endpoint_url}/api/v2/api-keys", headers=headers).json()
    mine = [item for item in listed["items"] if item["id"] == body["id"]]
    assert mine and "key" not in mine[0]

    client = VelerianClient(api_key=body["key"], base_url=local_server.endpoint_url)
    assert client.get("abps").status_code == 200
    revoked = httpx.delete(
        f"{local_server.endpoint_url}/api/v2/api-keys/{body['id']}", headers=headers
    )
    assert revoked.status_code == 204
    with pytest.raises(VelerianAuthError):
        client.get("abps")  # the very next request
    again = httpx.delete(
        f"{local_server.endpoint_url}/api/v2/api-keys/{body['id']}", headers=headers
    )
    assert again.status_code == 404 and "detail" in again.json()


def test_minting_refuses_bad_input_and_velerian_keys(
    local_server: LocalServer, api: httpx.Client, unique_name: Callable[..., str]
) -> None:
    unknown = mint(
        local_server, local_server.api_key, ["runs:admin"], organization=local_server.org
    )
    assert unknown.status_code == 422 and "scopes" in unknown.json()["detail"]
    missing = httpx.post(
        f"{local_server.endpoint_url}/api/v2/api-keys",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        json={"scopes": ["read"]},
    )
    assert missing.status_code == 422 and isinstance(missing.json()["detail"], list)
    org = unique_name("org")
    assert api.post("/organizations", json={"name": org, "display_name": org}).status_code == 201
    ambiguous = mint(local_server, local_server.api_key, ["read"])
    assert ambiguous.status_code == 422 and "organization" in ambiguous.json()["detail"]
    foreign = mint(local_server, local_server.api_key, ["read"], organization="no-such-org-x")
    assert foreign.status_code == 404
    vk = key_for(local_server, local_server.api_key, ["write"], local_server.org)
    assert mint(local_server, vk, ["read"], organization=local_server.org).status_code == 403
    assert mint(local_server, "tuk-nonsense", ["read"]).status_code == 401


def test_an_agents_key_cannot_mint(
    local_server: LocalServer, api: httpx.Client, unique_name: Callable[..., str]
) -> None:
    name = unique_name("agent")
    org = f"/organizations/{local_server.org}"
    created = api.post(f"{org}/agents", json={"name": name, "description": ""})
    assert created.status_code == 201, created.text
    key = api.post(f"{org}/agents/{name}/auth/keys", json={"name": "k", "description": ""})
    refused = mint(local_server, key.json()["token"], ["read"], organization=local_server.org)
    assert refused.status_code == 403 and "detail" in refused.json()


# --- errors -----------------------------------------------------------------------------------


def test_each_error_status_is_the_sdks_typed_error(
    local_server: LocalServer, velerian: Callable[..., VelerianClient], repository: str
) -> None:
    with pytest.raises(VelerianAuthError):
        VelerianClient(api_key="vk_live_nope", base_url=local_server.endpoint_url).get("abps")
    with pytest.raises(VelerianAuthError):  # an unknown Lamina key, likewise
        VelerianClient(api_key="tuk-nope", base_url=local_server.endpoint_url).get("abps")
    # A Lamina key works (its policies decide), in the organization it names when it has several.
    lamina_key = VelerianClient(api_key=local_server.api_key, base_url=local_server.endpoint_url)
    with pytest.raises(VelerianValidationError) as unnamed:
        lamina_key.get("abps")
    assert "x-lamina-organization" in str(unnamed.value.detail)
    listed = lamina_key.get("abps", headers={"X-Lamina-Organization": local_server.org})
    assert "items" in listed.json()
    reader = velerian(["runs:read"])
    with pytest.raises(VelerianForbiddenError) as forbidden:
        reader.list_audit_log()
    assert "audit:read" in str(forbidden.value.detail)
    with pytest.raises(VelerianForbiddenError):
        reader.post("abps", json={"name": "x", "repository": repository, "command": ["true"]})
    client = velerian()
    with pytest.raises(VelerianNotFoundError):
        client.get("abps/00000000-0000-0000-0000-000000000000")
    with pytest.raises(VelerianNotFoundError):
        client.get("no-such-route")
    abp = create_abp(client, repository)
    with pytest.raises(VelerianConflictError) as conflict:
        client.invoke_abp(abp["id"], payload={"a": 1})
    assert "not deployed" in str(conflict.value.detail)
    with pytest.raises(VelerianValidationError) as invalid:
        client.post(f"abps/{abp['id']}/invoke", json={"payload": "not an object"})
    assert isinstance(invalid.value.body["detail"], list)
    with pytest.raises(VelerianValidationError):
        client.post("abps", json={"name": "x", "repository": "other-org/data", "command": ["x"]})
    with pytest.raises(VelerianValidationError):
        client.list_audit_log(since="yesterday")


# --- ABPs, audit ------------------------------------------------------------------------------


def test_abps_are_created_deployed_listed_and_audited(
    velerian: Callable[..., VelerianClient], repository: str
) -> None:
    client = velerian()
    abp = create_abp(client, repository, requires_approval=True, env={"MODE": "fast"})
    assert abp["requires_approval"] is True and abp["env"] == {"MODE": "fast"}
    assert client.get(f"abps/{abp['id']}").json()["id"] == abp["id"]
    assert client.post(f"abps/{abp['id']}/deploy").json()["status"] == "deployed"
    assert any(item["id"] == abp["id"] for item in client.iter_paginated("abps", page_size=2))
    entries = list(client.iter_audit_log(action="abp.create", resource_id=abp["id"]))
    assert len(entries) == 1 and entries[0]["outcome"] == "success"
    assert entries[0]["created_at"] and entries[0]["resource_kind"] == "abp"
    deploys = client.list_audit_log(action="abp.deploy", resource_id=abp["id"])
    assert deploys.total == 1 and len(deploys) == 1
    assert client.post(f"abps/{abp['id']}/undeploy").json()["status"] == "undeployed"
    with pytest.raises(VelerianConflictError):
        client.invoke_abp(abp["id"], payload={})


def test_the_usage_summary_walks_its_evidence_packs(
    velerian: Callable[..., VelerianClient], local_server: LocalServer
) -> None:
    client = velerian(["read"])
    summary = client.usage_summary()
    assert summary.tenant_id and summary.as_of
    raw = summary.raw
    assert {"objects", "commits", "sandbox_runs", "sandbox_seconds"} <= set(raw)
    assert set(raw["governed_runs"]) == {"total", "by_outcome"}
    total = raw["evidence_packs_page"]["total"]
    packs = list(
        client.iter_paginated(
            "usage/summary",
            page_size=2,
            limit_param="evidence_limit",
            offset_param="evidence_offset",
            items_key="evidence_packs",
        )
    )
    assert len(packs) == total and len({pack["id"] for pack in packs}) == total
    v1 = httpx.get(
        f"{local_server.endpoint_url}/api/v1/organizations/{local_server.org}/usage/summary",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
    )
    assert v1.status_code == 200 and v1.json()["tenant_id"] == summary.tenant_id


# --- governed runs ----------------------------------------------------------------------------


@needs_sandboxes
def test_an_invoke_runs_governed_lands_its_commit_and_exports_evidence(
    velerian: Callable[..., VelerianClient], repo_http: RepoHttp
) -> None:
    client = velerian()
    command = [
        "sh",
        "-c",
        "cat /lamina/input/payload.json > /sandbox/in.json; "
        'printf %s "$LAMINA_PAYLOAD" > /sandbox/env.json',
    ]
    abp_id = deployed_abp(client, repo_http.repository, command=command)
    result = client.invoke_abp(abp_id, payload={"prompt": "hello", "n": 1})
    assert (result.outcome, result.is_allowed, result.requires_human) == ("completed", True, False)
    assert result.withheld is False and result.approval_id is None
    assert result.output and result.output["commit_id"] and result.output["exit_code"] == 0
    assert json.loads(repo_http.read("in.json")) == {"n": 1, "prompt": "hello"}
    assert repo_http.read("env.json") == repo_http.read("in.json")
    assert result.evidence_pack_id and result.evidence_pack_chain_hash
    run = client.await_run(result.invocation_id, poll_interval=0.2, run_timeout=10)
    assert run["status"] == "succeeded" and run["run_id"] == result.invocation_id

    export = client.invocation_evidence(abp_id, result.invocation_id)
    assert export.format == "zip" and export.s3_key.endswith(f"{result.evidence_pack_id}.zip")
    bundle = httpx.get(export.download_url, timeout=30.0)
    assert bundle.status_code == 200
    assert zipfile.ZipFile(BytesIO(bundle.content)).namelist()
    package = client.evidence_package(abp_id, since="2000-01-01T00:00:00Z")
    assert httpx.get(package.download_url, timeout=30.0).status_code == 200
    invokes = [
        entry
        for entry in client.iter_audit_log(action="abp.invoke")
        if entry["details"].get("run_id") == result.invocation_id
    ]
    assert len(invokes) == 1 and invokes[0]["details"]["abp_id"] == abp_id
    assert invokes[0]["resource_kind"] == "sandbox"  # the run's sandbox
    assert any(run["run_id"] == result.invocation_id for run in client.iter_paginated("pack-runs"))


@needs_sandboxes
def test_a_caller_without_invoke_run_gets_a_denied_verdict(
    local_server: LocalServer, member: Member
) -> None:
    admin = VelerianClient(
        api_key=key_for(local_server, local_server.api_key, ALL, member.org),
        base_url=local_server.endpoint_url,
    )
    abp_id = deployed_abp(admin, f"{member.org}/data")
    member_key = mint(local_server, member.client.headers["Authorization"][7:], ALL)
    assert member_key.status_code == 201, member_key.text  # the member's only organization
    client = VelerianClient(api_key=member_key.json()["key"], base_url=local_server.endpoint_url)
    result = client.invoke_abp(abp_id, payload={})
    assert (result.outcome, result.is_allowed) == ("denied", False)
    assert "InvokeRun" in str(result.aggregated_conditions)
    run = client.await_run(result.invocation_id, poll_interval=0.1, run_timeout=5)
    assert run["status"] == "blocked"
    denied = admin.list_audit_log(action="abp.invoke", resource_id=result.invocation_id)
    assert [entry["outcome"] for entry in denied.items] == ["denied"]


@needs_sandboxes
def test_a_run_that_requires_approval_is_held_then_approved_by_another_member(
    api: httpx.Client, local_server: LocalServer, member: Member
) -> None:
    admin = VelerianClient(
        api_key=key_for(local_server, local_server.api_key, ALL, member.org),
        base_url=local_server.endpoint_url,
    )
    abp_id = deployed_abp(
        admin,
        f"{member.org}/data",
        command=["sh", "-c", "echo approved > /sandbox/out.txt"],
        requires_approval=True,
    )
    result = admin.invoke_abp(abp_id, payload={"x": 1})
    assert (result.outcome, result.requires_human, result.withheld) == (
        "requires_approval",
        True,
        True,
    )
    assert result.approval_id and result.is_allowed
    assert admin.get(f"pack-runs/{result.invocation_id}").json()["status"] == "awaiting_approval"
    pending = [
        item["id"] for item in admin.iter_paginated("approvals", params={"state": "pending"})
    ]
    assert result.approval_id in pending
    with pytest.raises(VelerianForbiddenError):  # four eyes: not the requester
        admin.post(f"approvals/{result.approval_id}/approve", json={})

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
    approver = VelerianClient(
        api_key=key_for(local_server, member.client.headers["Authorization"][7:], ALL, member.org),
        base_url=local_server.endpoint_url,
    )
    decided = approver.post(f"approvals/{result.approval_id}/approve", json={"reason": "ok"})
    assert decided.json()["state"] == "approved"
    run = admin.await_run(result.invocation_id, poll_interval=0.2, run_timeout=20)
    assert run["status"] == "succeeded" and run["output"]["commit_id"]
    assert member.repo.read("out.txt") == b"approved\n"
    export = admin.invocation_evidence(abp_id, result.invocation_id)
    assert httpx.get(export.download_url, timeout=30.0).status_code == 200
    assert admin.list_audit_log(action="approval.approve").total >= 1
