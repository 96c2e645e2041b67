"""Evidence packs against the real server with real sandboxes: a run produces a signed pack, its
export downloads with the URL alone, and the offline verifier passes it against the published
key, and names each part, object, commit field or signature tampered with."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.cli import main as cli
from lamina.evidence import verify
from lamina.testing import LocalServer
from lamina_server.api.signing import UrlSigner
from lamina_server.governance.signing_key import SigningKey
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.conftest import RepoHttp
from tests.server.sandbox_wire import Sandboxes
from tests.unit.test_evidence import edit_document, part, rewrite

_CANNOT_RUN = BubblewrapRunner().check()
needs_sandboxes = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")


@pytest.fixture
def boxes(repo_http: RepoHttp, local_server: LocalServer) -> Sandboxes:
    return Sandboxes(repo_http, local_server.endpoint_url, local_server.api_key)


def pack_of(boxes: Sandboxes, sandbox_id: str, timeout: float = 30) -> dict[str, Any]:
    """The pack of a sandbox (made just after it ended), with its document."""
    deadline = time.monotonic() + timeout
    while True:
        listed = boxes.api.get(f"{boxes.repo.base}/evidence", params={"subject_id": sandbox_id})
        assert listed.status_code == 200, listed.text
        results = listed.json()["results"]
        if results:
            response = boxes.api.get(f"{boxes.repo.base}/evidence/{results[0]['id']}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, f"no evidence pack for sandbox {sandbox_id}"
        time.sleep(0.05)


def download(url: str, target: Path) -> Path:
    response = httpx.get(url, timeout=60)  # no Authorization: the URL is the credential
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    target.write_bytes(response.content)
    return target


@pytest.fixture
def public_key(local_server: LocalServer) -> str:
    response = httpx.get(f"{local_server.endpoint_url}/api/v1/evidence/public-key")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["algorithm"] == "ed25519" and len(body["key_id"]) == 64
    pem: str = body["public_key_pem"]
    return pem


@pytest.fixture(scope="module")
def run(local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One sandbox run that changes data, its pack and its exported bundle (shared: the
    tamper tests each work on a copy)."""
    if _CANNOT_RUN is not None:
        pytest.skip(f"no sandboxes: {_CANNOT_RUN}")
    api = httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        timeout=60,
    )
    name = f"evidence-{time.time_ns()}"
    created = api.post(f"/organizations/{local_server.org}/repositories", json={"name": name})
    assert created.status_code == 201, created.text
    boxes = Sandboxes(
        RepoHttp(api, f"{local_server.org}/{name}"), local_server.endpoint_url, local_server.api_key
    )
    boxes.commit_files({"data/in.txt": b"seven\n", "data/old.txt": b"old"})
    sandbox_id = boxes.create(
        command=[
            "sh",
            "-c",
            "wc -c < data/in.txt > data/out.txt; echo more >> data/in.txt; rm data/old.txt; "
            "echo ran",
        ],
        env_vars={"TOKEN": "s3cr3t-value"},
    )
    status = boxes.wait(sandbox_id)
    assert (status["status"], status["status_reason"]) == ("done", "committed"), status
    pack = pack_of(boxes, sandbox_id)
    exported = api.post(f"{boxes.repo.base}/evidence/{pack['id']}/export")
    assert exported.status_code == 200, exported.text
    folder = tmp_path_factory.mktemp("evidence")
    bundle = download(exported.json()["download_url"], folder / "bundle.zip")
    return {
        "api": api,
        "boxes": boxes,
        "sandbox_id": sandbox_id,
        "status": status,
        "pack": pack,
        "export": exported.json(),
        "bundle": bundle.read_bytes(),
    }


@pytest.fixture
def bundle(run: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "bundle.zip"
    path.write_bytes(run["bundle"])
    return path


@needs_sandboxes
def test_a_sandbox_run_produces_a_signed_pack_of_what_it_did(run: dict[str, Any]) -> None:
    pack, status = run["pack"], run["status"]
    document = pack["document"]
    assert (pack["kind"], pack["subject_id"], pack["commit_id"]) == (
        "sandbox_run",
        run["sandbox_id"],
        status["commit_id"],
    )
    assert [item["name"] for item in document["parts"]] == [
        "inputs",
        "policy_decisions",
        "approval",
        "outputs",
        "audit",
    ]
    assert document["chain_hash"] == pack["chain_hash"] == document["parts"][-1]["hash"]
    inputs = part(document, "inputs")
    assert inputs["image"] == "host" and inputs["env_names"] == ["TOKEN"]
    assert "s3cr3t-value" not in json.dumps(document)  # env names, never values
    assert inputs["base_commit"] and inputs["command"][0] == "sh"
    outputs = part(document, "outputs")
    assert outputs["exit_code"] == 0 and outputs["log"]["size"] > 0
    assert outputs["commit"]["id"] == status["commit_id"]
    assert {(e["path"], e["status"]) for e in outputs["diff"]["entries"]} == {
        ("data/in.txt", "modified"),
        ("data/out.txt", "added"),
        ("data/old.txt", "removed"),
    }
    export = run["export"]
    assert (export["artifact_kind"], export["format"], export["delivery"]) == (
        "evidence_pack",
        "zip",
        "presigned",
    )
    assert export["s3_key"].endswith(f"/{pack['id']}.zip") and export["expires_at"]


@needs_sandboxes
def test_the_exported_bundle_verifies_offline_against_the_published_key(
    bundle: Path, public_key: str
) -> None:
    report = verify(bundle, public_key=public_key)
    assert report.ok, report.problems
    assert report.unchecked == () and report.key_source == "given"


@needs_sandboxes
def test_another_key_does_not_verify(bundle: Path) -> None:
    report = verify(bundle, public_key=SigningKey.generate().public_key_pem)
    assert any(
        problem.endswith("signature does not verify against the given public key")
        for problem in report.problems
    )


@needs_sandboxes
@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("inputs", lambda body: body.update(env_names=[])),
        ("policy_decisions", lambda body: body["decisions"].append({"allowed": True})),
        ("approval", lambda body: body.update(record={"approved_by": "mallory"})),
        ("outputs", lambda body: body.update(exit_code=0, log=None)),
        ("audit", lambda body: body["entries"].append({"id": "forged", "hash": "0"})),
    ],
)
def test_each_tampered_part_is_named(
    run: dict[str, Any], bundle: Path, public_key: str, name: str, change: Any
) -> None:
    pack_id = run["pack"]["id"]
    edit_document(bundle, pack_id, lambda document: change(part(document, name)))
    problems = verify(bundle, public_key=public_key).problems
    assert f"pack {pack_id}: part {name!r}: hash does not match its content" in problems


@needs_sandboxes
def test_a_removed_part_is_named(run: dict[str, Any], bundle: Path, public_key: str) -> None:
    pack_id = run["pack"]["id"]
    edit_document(bundle, pack_id, lambda document: document["parts"].pop(1))
    problems = verify(bundle, public_key=public_key).problems
    assert f"pack {pack_id}: part 'policy_decisions' is missing" in problems


@needs_sandboxes
def test_tampered_object_bytes_are_named(
    run: dict[str, Any], bundle: Path, public_key: str
) -> None:
    pack_id = run["pack"]["id"]
    rewrite(bundle, f"packs/{pack_id}/objects/data/out.txt", lambda data: b"99\n")
    assert verify(bundle, public_key=public_key).problems == (
        f"pack {pack_id}: object data/out.txt: content does not match the recorded checksum",
    )


@needs_sandboxes
def test_tampered_commit_fields_are_named(
    run: dict[str, Any], bundle: Path, public_key: str
) -> None:
    pack_id, commit_id = run["pack"]["id"], run["status"]["commit_id"]
    edit_document(
        bundle,
        pack_id,
        lambda document: part(document, "outputs")["commit"]["fields"].update(message="forged"),
    )
    problems = verify(bundle, public_key=public_key).problems
    assert f"pack {pack_id}: commit {commit_id}: id does not match its recorded fields" in problems


@needs_sandboxes
def test_a_tampered_signature_is_named(run: dict[str, Any], bundle: Path, public_key: str) -> None:
    pack_id = run["pack"]["id"]

    def flip(data: bytes) -> bytes:
        raw = bytearray(base64.b64decode(data))
        raw[0] ^= 1
        return base64.b64encode(bytes(raw))

    rewrite(bundle, f"packs/{pack_id}/evidence.sig", flip)
    assert verify(bundle, public_key=public_key).problems == (
        f"pack {pack_id}: signature does not verify against the given public key",
    )


@needs_sandboxes
def test_the_cli_verifies_and_exits_by_the_result(
    bundle: Path, public_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "server.pem"
    key_file.write_text(public_key)
    assert cli(["evidence", "verify", str(bundle), "--public-key", str(key_file)]) == 0
    assert capsys.readouterr().out.startswith("VERIFIED")
    rewrite(bundle, "manifest.json", lambda data: data.replace(b'"object_cap":', b'"cap":'))
    assert cli(["evidence", "verify", str(bundle), "--public-key", str(key_file)]) == 1
    assert "manifest: signature does not verify" in capsys.readouterr().out
    assert cli(["evidence", "verify"]) == 2
    assert cli(["evidence", "verify", str(tmp_path / "missing.zip")]) == 2


@needs_sandboxes
def test_the_cli_fetches_the_key_from_an_endpoint(
    bundle: Path, local_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["evidence", "verify", str(bundle), "--endpoint", local_server.endpoint_url]) == 0
    assert "against the given public key" in capsys.readouterr().out


@needs_sandboxes
def test_a_forged_or_expired_download_url_is_refused(
    run: dict[str, Any], local_server: LocalServer
) -> None:
    url: str = run["export"]["download_url"]
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    refused = httpx.get(forged)
    assert refused.status_code == 403 and "invalid signature" in refused.json()["message"]
    signer = UrlSigner((local_server.data_dir / "signing.key").read_bytes())
    claims = {"o": "x", "r": "", "p": "", "s": 0}
    token = signer.sign("evidence-bundle", {**claims, "u": 1, "e": "x"}, ttl=-1)
    expired = httpx.get(f"{local_server.endpoint_url}/api/v1/evidence/download?token={token}")
    assert expired.status_code == 403 and "expired" in expired.json()["message"]


@needs_sandboxes
def test_an_organization_export_bundles_its_packs_since_a_time(
    run: dict[str, Any], local_server: LocalServer, public_key: str, tmp_path: Path
) -> None:
    api, boxes = run["api"], run["boxes"]
    repository = boxes.repo.repository.split("/")[1]
    exported = api.post(
        f"/organizations/{local_server.org}/evidence/export",
        params={"since": "2000-01-01T00:00:00Z", "repository": repository},
    )
    assert exported.status_code == 200, exported.text
    bundle = download(exported.json()["download_url"], tmp_path / "org.zip")
    report = verify(bundle, public_key=public_key)
    assert report.ok, report.problems
    assert run["pack"]["id"] in report.packs


def test_bad_export_input_is_a_400_naming_the_field(
    api: httpx.Client, local_server: LocalServer
) -> None:
    response = api.post(
        f"/organizations/{local_server.org}/evidence/export", params={"since": "yesterday"}
    )
    assert response.status_code == 400 and response.json()["message"].startswith("since:")


def test_an_unknown_pack_is_a_404(api: httpx.Client, repository: str) -> None:
    org, name = repository.split("/")
    base = f"/organizations/{org}/repositories/{name}/evidence"
    assert api.get(f"{base}/nope").json()["code"] == "evidence_pack_not_found"
    assert api.post(f"{base}/nope/export").status_code == 404
    listed = api.get(base)
    assert listed.status_code == 200 and listed.json()["results"] == []
