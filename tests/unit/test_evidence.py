"""The offline verifier (:mod:`lamina.evidence`) against bundles written with the server's own
format module and key type: what verifies, and what each kind of tampering is reported as."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lamina import ConfigurationError, InvalidArgumentError
from lamina import evidence as verifier
from lamina.evidence import verify
from lamina_server.governance import evidence_format as fmt
from lamina_server.governance.signing_key import SigningKey, load_signing_key

OBJECT = b"hello, evidence\n"


def audit_entry(entry_id: str, prev_hash: str) -> dict[str, Any]:
    entry = {
        "id": entry_id,
        "prev_hash": prev_hash,
        "action": "CommitSession",
        "resource": "local/repo",
        "outcome": "allowed",
    }
    return {**entry, "hash": hashlib.sha256(fmt.canonical(entry)).hexdigest()}


def commit_fields() -> dict[str, Any]:
    return fmt.commit_fields(
        repository_id="repo-1",
        parents=["a" * 64],
        tree="b" * 64,
        message="sandbox run",
        metadata={"lamina.sandbox_id": "sb-1"},
        committer=("user", "u-1", "admin"),
        created_at_micros=1_700_000_000_000_000,
    )


def bodies() -> dict[str, Any]:
    fields = commit_fields()
    first = audit_entry("e1", "0" * 64)
    return {
        "inputs": {"image": "host", "command": ["sh", "-c", "true"], "env_names": ["TOKEN"]},
        "policy_decisions": {
            "decisions": [
                {"action": "GetObject", "resource": "local/repo/", "allowed": True, "reason": ""}
            ]
        },
        "approval": {"record": None},
        "outputs": {
            "exit_code": 0,
            "log": {"sha256": "c" * 64, "size": 3},
            "diff": {
                "base": "a" * 64,
                "entries": [
                    {
                        "path": "data/out.txt",
                        "status": "added",
                        "size": len(OBJECT),
                        "etag": hashlib.md5(OBJECT).hexdigest(),
                        "content_type": "text/plain",
                        "sha256": hashlib.sha256(OBJECT).hexdigest(),
                    },
                    {"path": "data/gone.txt", "status": "removed"},
                ],
            },
            "commit": {
                "id": hashlib.sha256(fmt.canonical(fields)).hexdigest(),
                "fields": fields,
            },
        },
        "audit": {"entries": [first, audit_entry("e2", first["hash"])]},
    }


def write_bundle(
    path: Path, key: SigningKey, *, include_object: bool = True, pack_id: str = "pack-1"
) -> Path:
    document = fmt.document(
        pack_id=pack_id,
        kind=fmt.SANDBOX_RUN,
        organization={"id": "org-1", "name": "local"},
        repository={"id": "repo-1", "name": "repo"},
        subject={"type": "sandbox", "id": "sb-1"},
        created_at="2024-01-01T00:00:00+00:00",
        key_id=key.key_id,
        bodies=bodies(),
    )
    text = fmt.canonical(document)
    folder = fmt.pack_folder(pack_id)
    objects = {"included": ["data/out.txt"] if include_object else [], "omitted": []}
    if not include_object:
        objects["omitted"] = ["data/out.txt"]
    manifest = {
        "format": fmt.BUNDLE_FORMAT,
        "created_at": "2024-01-01T00:00:00+00:00",
        "key_id": key.key_id,
        "object_cap": 1024,
        "packs": [
            {
                "id": pack_id,
                "kind": fmt.SANDBOX_RUN,
                "repository_id": "repo-1",
                "chain_hash": document["chain_hash"],
                "objects": objects,
            }
        ],
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(fmt.PUBLIC_KEY, key.public_key_pem)
        archive.writestr(f"{folder}evidence.json", text)
        archive.writestr(f"{folder}evidence.sig", fmt.encode_signature(key.sign(text)))
        if include_object:
            archive.writestr(f"{folder}objects/data/out.txt", OBJECT)
        manifest_text = fmt.canonical(manifest)
        archive.writestr(fmt.MANIFEST, manifest_text)
        archive.writestr(fmt.MANIFEST_SIG, fmt.encode_signature(key.sign(manifest_text)))
    return path


def rewrite(bundle: Path, name: str, change: Callable[[bytes], bytes | None]) -> None:
    """Replaces the member ``name`` of a zip with ``change(its bytes)`` (``None`` drops it)."""
    with zipfile.ZipFile(bundle) as archive:
        members = {item: archive.read(item) for item in archive.namelist()}
    replaced = change(members[name])
    if replaced is None:
        del members[name]
    else:
        members[name] = replaced
    with zipfile.ZipFile(bundle, "w") as archive:
        for item, data in members.items():
            archive.writestr(item, data)


def edit_document(bundle: Path, pack_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Edits a pack's document in place (its hashes and signature left as they were)."""

    def apply(data: bytes) -> bytes:
        document = json.loads(data)
        change(document)
        return json.dumps(document).encode()

    rewrite(bundle, f"packs/{pack_id}/evidence.json", apply)


def part(document: dict[str, Any], name: str) -> Any:
    return next(item for item in document["parts"] if item["name"] == name)["body"]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def bundle(tmp_path: Path, key: SigningKey) -> Path:
    return write_bundle(tmp_path / "bundle.zip", key)


def test_an_untouched_bundle_verifies_against_the_signing_key(
    bundle: Path, key: SigningKey
) -> None:
    report = verify(bundle, public_key=key.public_key_pem)
    assert report.ok, report.problems
    assert (report.packs, report.unchecked, report.key_source) == (("pack-1",), (), "given")
    assert report.key_id == key.key_id
    assert str(report).startswith("VERIFIED: 1 pack(s)")


def test_the_key_may_be_given_as_bytes_or_a_file(
    bundle: Path, key: SigningKey, tmp_path: Path
) -> None:
    (tmp_path / "key.pem").write_text(key.public_key_pem)
    assert verify(bundle, public_key=key.public_key_pem.encode()).ok
    assert verify(bundle, public_key=tmp_path / "key.pem").ok
    assert verify(bundle, public_key=str(tmp_path / "key.pem")).ok


def test_without_a_key_the_embedded_one_is_used_and_the_report_says_so(bundle: Path) -> None:
    report = verify(bundle)
    assert report.ok and report.key_source == "embedded"
    assert "integrity relative to that key only" in str(report)


def test_another_key_fails_every_signature(bundle: Path) -> None:
    other = SigningKey.generate()
    report = verify(bundle, public_key=other.public_key_pem)
    assert not report.ok
    assert "manifest: signature does not verify against the given public key" in report.problems
    assert "pack pack-1: signature does not verify against the given public key" in (
        report.problems
    )
    assert any("signed with key" in problem for problem in report.problems)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("inputs", lambda body: body.update(image="evil")),
        ("policy_decisions", lambda body: body["decisions"][0].update(allowed=False)),
        ("approval", lambda body: body.update(record={"approved_by": "mallory"})),
        ("outputs", lambda body: body.update(exit_code=1)),
        ("audit", lambda body: body["entries"].pop()),
    ],
)
def test_a_changed_part_is_named(
    bundle: Path, key: SigningKey, name: str, change: Callable[[Any], None]
) -> None:
    edit_document(bundle, "pack-1", lambda document: change(part(document, name)))
    report = verify(bundle, public_key=key.public_key_pem)
    assert f"pack pack-1: part {name!r}: hash does not match its content" in report.problems
    assert "pack pack-1: signature does not verify against the given public key" in (
        report.problems
    )


def test_a_removed_part_is_named(bundle: Path, key: SigningKey) -> None:
    edit_document(
        bundle,
        "pack-1",
        lambda document: document.update(
            parts=[item for item in document["parts"] if item["name"] != "approval"]
        ),
    )
    problems = verify(bundle, public_key=key.public_key_pem).problems
    assert "pack pack-1: part 'approval' is missing" in problems
    assert "pack pack-1: part 'outputs': does not chain to the part before it" in problems


def test_a_rehashed_chain_still_fails_the_signature(bundle: Path, key: SigningKey) -> None:
    def forge(document: dict[str, Any]) -> None:
        part(document, "outputs")["exit_code"] = 0
        part(document, "inputs")["image"] = "evil"
        parts, chain_hash = fmt.chain({item["name"]: item["body"] for item in document["parts"]})
        document.update(parts=parts, chain_hash=chain_hash)

    edit_document(bundle, "pack-1", forge)
    problems = verify(bundle, public_key=key.public_key_pem).problems
    assert problems == (
        "pack pack-1: signature does not verify against the given public key",
        "pack pack-1: chain_hash differs from the manifest's",
    )


def test_an_audit_entry_whose_fields_changed_is_named(bundle: Path, key: SigningKey) -> None:
    edit_document(
        bundle,
        "pack-1",
        lambda document: part(document, "audit")["entries"][1].update(outcome="denied"),
    )
    problems = verify(bundle, public_key=key.public_key_pem).problems
    assert "pack pack-1: audit entry e2: hash does not match its fields" in problems
    assert not any("audit entry e1" in problem for problem in problems)


def test_changed_commit_fields_no_longer_give_the_commit_id(bundle: Path, key: SigningKey) -> None:
    edit_document(
        bundle,
        "pack-1",
        lambda document: part(document, "outputs")["commit"]["fields"].update(message="other"),
    )
    problems = verify(bundle, public_key=key.public_key_pem).problems
    commit_id = bodies()["outputs"]["commit"]["id"]
    assert f"pack pack-1: commit {commit_id}: id does not match its recorded fields" in problems


def test_changed_object_bytes_are_named(bundle: Path, key: SigningKey) -> None:
    rewrite(bundle, "packs/pack-1/objects/data/out.txt", lambda data: data.upper())
    assert verify(bundle, public_key=key.public_key_pem).problems == (
        "pack pack-1: object data/out.txt: content does not match the recorded checksum",
    )


def test_a_removed_object_the_manifest_lists_is_named(bundle: Path, key: SigningKey) -> None:
    rewrite(bundle, "packs/pack-1/objects/data/out.txt", lambda data: None)
    assert verify(bundle, public_key=key.public_key_pem).problems == (
        "pack pack-1: object data/out.txt: missing from the bundle (the manifest lists it)",
    )


def test_an_added_object_is_named(bundle: Path, key: SigningKey) -> None:
    with zipfile.ZipFile(bundle, "a") as archive:
        archive.writestr("packs/pack-1/objects/data/extra.txt", b"x")
    assert verify(bundle, public_key=key.public_key_pem).problems == (
        "pack pack-1: object data/extra.txt: in the bundle but not in the pack's diff",
    )


def test_objects_left_out_over_the_cap_are_reported_unchecked(
    tmp_path: Path, key: SigningKey
) -> None:
    bundle = write_bundle(tmp_path / "capped.zip", key, include_object=False)
    report = verify(bundle, public_key=key.public_key_pem)
    assert report.ok
    assert report.unchecked == (
        "pack pack-1: object data/out.txt: not included in the bundle; its content was not checked",
    )
    assert "not checked: pack pack-1: object data/out.txt" in str(report)


def test_a_replaced_signature_is_named(bundle: Path, key: SigningKey) -> None:
    forged = base64.b64encode(key.sign(b"something else"))
    rewrite(bundle, "packs/pack-1/evidence.sig", lambda data: forged)
    assert verify(bundle, public_key=key.public_key_pem).problems == (
        "pack pack-1: signature does not verify against the given public key",
    )


def test_a_changed_manifest_is_named(bundle: Path, key: SigningKey) -> None:
    def drop_inclusion(data: bytes) -> bytes:
        manifest = json.loads(data)
        manifest["packs"][0]["objects"] = {"included": [], "omitted": ["data/out.txt"]}
        return json.dumps(manifest).encode()

    rewrite(bundle, fmt.MANIFEST, drop_inclusion)
    assert verify(bundle, public_key=key.public_key_pem).problems == (
        "manifest: signature does not verify against the given public key",
    )


def test_a_pack_missing_from_the_bundle_is_named(bundle: Path, key: SigningKey) -> None:
    rewrite(bundle, "packs/pack-1/evidence.json", lambda data: None)
    assert "pack pack-1: evidence.json: missing from the bundle" in (
        verify(bundle, public_key=key.public_key_pem).problems
    )


def test_what_is_not_a_bundle_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "not.zip"
    path.write_bytes(b"plain text")
    assert verify(path).problems == ("bundle: not a zip file",)


def test_a_public_key_that_is_not_ed25519_pem_is_refused(bundle: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not a PEM public key"):
        verify(bundle, public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_without_cryptography_the_error_says_which_extra_to_install(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    with pytest.raises(ConfigurationError, match=r"lamina\[evidence\]"):
        verifier.verify(bundle)


def test_the_signing_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_signing_key(tmp_path)
    assert (tmp_path / "evidence.key").stat().st_mode & 0o777 == 0o600
    assert load_signing_key(tmp_path).key_id == first.key_id
    assert first.public_json()["algorithm"] == "ed25519"
