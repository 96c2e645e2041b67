"""Offline verification of evidence bundles: ``lamina.evidence.verify(path)``.

An evidence bundle (exported from a Lamina server) holds signed evidence packs: what a sandbox
run or an approved commit took in, what was decided, the approval, what came out (exit code,
log digest, the diff and the resulting commit) and the run's audit entries, hashed into a chain
and signed with the server's Ed25519 key, with the bytes of the objects the commit wrote. This
module checks all of it without talking to anyone: the signatures (of the manifest and of each
pack), each part's hash and the chain, each audit entry's hash, the commit id recomputed from
its fields, and each included object's bytes against the sizes and checksums recorded in the
diff. It names what does not match.

Verify against the key the server publishes (``GET /api/v1/evidence/public-key``, or
``lamina.Client().evidence_public_key()``): without one, the key embedded in the bundle is
used, which proves only that the bundle is intact relative to itself.

Checking signatures needs the ``cryptography`` package (``pip install 'lamina[evidence]'``).
The format is described in ``docs/governance.md`` (Evidence packs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina._errors import ConfigurationError, InvalidArgumentError

__all__ = ["VerificationReport", "verify"]

FORMAT = "lamina.evidence/1"
BUNDLE_FORMAT = "lamina.evidence-bundle/1"
PART_NAMES = ("inputs", "policy_decisions", "approval", "outputs", "audit")
GENESIS = "0" * 64
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
_STORED_OBJECTS = ("added", "modified")
_MD5 = re.compile(r"[0-9a-f]{32}")
_READ = 1024 * 1024

PublicKeyInput = bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify` found. ``ok`` is true when nothing was found wrong; ``problems``
    names each thing that does not match; ``unchecked`` names what the bundle did not let it
    check (objects left out of the bundle); ``key_source`` is ``"given"`` or ``"embedded"``
    (then the result proves integrity only relative to the key inside the bundle)."""

    problems: tuple[str, ...]
    unchecked: tuple[str, ...]
    packs: tuple[str, ...]
    key_source: str
    key_id: str | None

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [
            f"{'VERIFIED' if self.ok else 'NOT VERIFIED'}: {len(self.packs)} pack(s), "
            + (
                f"against the given public key ({self.key_id})"
                if self.key_source == "given"
                else "against the key embedded in the bundle (integrity relative to that key "
                "only: verify with the server's published key to prove who signed it)"
            )
        ]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  not checked: {item}" for item in self.unchecked]
        return "\n".join(lines)


def canonical(value: Any) -> bytes:
    """The byte form hashes and signatures are computed over."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- keys and signatures ------------------------------------------------------------------------


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise ConfigurationError(
            "verifying evidence signatures needs the 'cryptography' package: "
            "pip install 'lamina[evidence]'"
        ) from None
    return serialization


def _load_key(pem: bytes, source: str) -> Any:
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidArgumentError(f"{source} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgumentError(f"{source} is not an Ed25519 public key")
    return key


def _key_id(key: Any) -> str:
    serialization = _crypto()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _sha256(raw)


def _given_key(public_key: PublicKeyInput) -> Any:
    if isinstance(public_key, bytes):
        return _load_key(public_key, "public_key")
    if isinstance(public_key, str) and public_key.lstrip().startswith("-----BEGIN"):
        return _load_key(public_key.encode("ascii", "replace"), "public_key")
    path = Path(public_key)
    return _load_key(path.read_bytes(), str(path))


def _signed(key: Any, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _signature(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


# --- the verifier -------------------------------------------------------------------------------


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def verify(
    bundle: str | os.PathLike[str], *, public_key: PublicKeyInput | None = None
) -> VerificationReport:
    """Verify the evidence bundle at ``bundle`` offline.

    ``public_key`` is the server's Ed25519 public key: PEM text or bytes, or the path of a PEM
    file. Without it, the key embedded in the bundle is used (see
    :attr:`VerificationReport.key_source`). A bundle that is damaged or tampered with gives a
    report whose ``problems`` say what; a ``public_key`` that is not an Ed25519 PEM key raises
    :class:`~lamina.InvalidArgumentError`, an unreadable file :class:`OSError`, and a missing
    ``cryptography`` package :class:`~lamina.ConfigurationError`.
    """
    given = _given_key(public_key) if public_key is not None else None
    found = _Findings()
    try:
        archive = zipfile.ZipFile(bundle)
    except zipfile.BadZipFile:
        return VerificationReport(("bundle: not a zip file",), (), (), "given", None)
    with archive:
        names = set(archive.namelist())
        key = given
        if key is None:
            if PUBLIC_KEY not in names:
                return VerificationReport(
                    (f"bundle: no {PUBLIC_KEY}, and no public key was given",),
                    (),
                    (),
                    "embedded",
                    None,
                )
            key = _load_key(archive.read(PUBLIC_KEY), f"the bundle's {PUBLIC_KEY}")
        source = "given" if given is not None else "embedded"
        checker = _Checker(archive, names, key, source, found)
        packs = checker.run()
    return VerificationReport(
        tuple(found.problems), tuple(found.unchecked), tuple(packs), source, _key_id(key)
    )


class _Checker:
    def __init__(
        self,
        archive: zipfile.ZipFile,
        names: set[str],
        key: Any,
        source: str,
        found: _Findings,
    ) -> None:
        self.archive = archive
        self.names = names
        self.key = key
        self.source = source
        self.key_id = _key_id(key)
        self.found = found

    def problem(self, text: str) -> None:
        self.found.problems.append(text)

    def _json(self, name: str, what: str) -> Any:
        if name not in self.names:
            self.problem(f"{what}: missing from the bundle")
            return None
        try:
            return json.loads(self.archive.read(name))
        except (ValueError, UnicodeDecodeError):
            self.problem(f"{what}: not valid JSON")
            return None

    def _check_signature(self, what: str, value: Any, sig_name: str) -> None:
        if sig_name not in self.names:
            self.problem(f"{what}: signature missing from the bundle")
            return
        signature = _signature(self.archive.read(sig_name))
        if signature is None or not _signed(self.key, signature, canonical(value)):
            self.problem(f"{what}: signature does not verify against the {self.source} public key")

    def run(self) -> list[str]:
        manifest = self._json(MANIFEST, "manifest")
        listed: dict[str, dict[str, Any]] = {}
        if isinstance(manifest, dict):
            self._check_signature("manifest", manifest, MANIFEST_SIG)
            if manifest.get("format") != BUNDLE_FORMAT:
                self.problem(f"manifest: format is not {BUNDLE_FORMAT}")
            for item in manifest.get("packs") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    listed[item["id"]] = item
        elif manifest is not None:
            self.problem("manifest: not a JSON object")
        present = sorted(
            {name.split("/")[1] for name in self.names if name.startswith("packs/")} - {""}
            | set(listed)
        )
        for pack_id in present:
            if pack_id not in listed:
                self.problem(f"pack {pack_id}: in the bundle but not in the manifest")
            _PackChecker(self, pack_id, listed.get(pack_id)).run()
        return present


class _PackChecker:
    def __init__(self, bundle: _Checker, pack_id: str, listed: dict[str, Any] | None) -> None:
        self.bundle = bundle
        self.id = pack_id
        self.folder = f"packs/{pack_id}/"
        self.listed = listed or {}

    def problem(self, text: str) -> None:
        self.bundle.problem(f"pack {self.id}: {text}")

    def run(self) -> None:
        bundle = self.bundle
        document = bundle._json(f"{self.folder}evidence.json", f"pack {self.id}: evidence.json")
        if not isinstance(document, dict):
            return
        bundle._check_signature(f"pack {self.id}", document, f"{self.folder}evidence.sig")
        if document.get("key_id") != bundle.key_id:
            self.problem(
                f"signed with key {document.get('key_id')}, not the {bundle.source} key "
                f"{bundle.key_id}"
            )
        if document.get("format") != FORMAT:
            self.problem(f"format is not {FORMAT}")
        if document.get("id") != self.id:
            self.problem(f"the document's id is {document.get('id')!r}")
        parts = self._parts(document)
        if self.listed and self.listed.get("chain_hash") != document.get("chain_hash"):
            self.problem("chain_hash differs from the manifest's")
        audit = parts.get("audit")
        if isinstance(audit, dict):
            self._audit(audit.get("entries") or [])
        outputs = parts.get("outputs")
        if isinstance(outputs, dict):
            self._outputs(outputs, document)

    def _parts(self, document: dict[str, Any]) -> dict[str, Any]:
        """Checks the chain; the bodies by name."""
        parts = document.get("parts")
        if not isinstance(parts, list):
            self.problem("the document has no parts")
            return {}
        bodies: dict[str, Any] = {}
        prev = GENESIS
        names: list[str] = []
        for part in parts:
            if not isinstance(part, dict) or not isinstance(part.get("name"), str):
                self.problem("a part is not an object with a name")
                continue
            name = part["name"]
            names.append(name)
            if name not in PART_NAMES:
                self.problem(f"part {name!r} is not part of {FORMAT}")
            body = part.get("body")
            digest = _sha256(canonical({"name": name, "body": body, "prev": part.get("prev")}))
            if digest != part.get("hash"):
                self.problem(f"part {name!r}: hash does not match its content")
            if part.get("prev") != prev:
                self.problem(f"part {name!r}: does not chain to the part before it")
            prev = str(part.get("hash"))
            bodies[name] = body
        for name in PART_NAMES:
            if name not in names:
                self.problem(f"part {name!r} is missing")
        if [n for n in names if n in PART_NAMES] != [n for n in PART_NAMES if n in names]:
            self.problem(f"the parts are not in the order {', '.join(PART_NAMES)}")
        if document.get("chain_hash") != prev:
            self.problem("chain_hash is not the hash of the last part")
        return bodies

    def _audit(self, entries: Iterable[Any]) -> None:
        for entry in entries:
            if not isinstance(entry, dict):
                self.problem("an audit entry is not an object")
                continue
            fields = {name: value for name, value in entry.items() if name != "hash"}
            if _sha256(canonical(fields)) != entry.get("hash"):
                self.problem(f"audit entry {entry.get('id')}: hash does not match its fields")

    def _outputs(self, outputs: dict[str, Any], document: dict[str, Any]) -> None:
        commit = outputs.get("commit")
        if isinstance(commit, dict):
            fields = commit.get("fields")
            if _sha256(canonical(fields)) != commit.get("id"):
                self.problem(f"commit {commit.get('id')}: id does not match its recorded fields")
            repository = document.get("repository")
            if (
                isinstance(fields, dict)
                and isinstance(repository, dict)
                and fields.get("repository") != repository.get("id")
            ):
                self.problem(f"commit {commit.get('id')}: of another repository")
        diff = outputs.get("diff")
        entries = diff.get("entries") if isinstance(diff, dict) else None
        self._objects(entries if isinstance(entries, list) else [])

    def _objects(self, entries: list[Any]) -> None:
        prefix = f"{self.folder}objects/"
        stored = {name[len(prefix) :] for name in self.bundle.names if name.startswith(prefix)}
        objects = self.listed.get("objects") if isinstance(self.listed, dict) else None
        included = set(objects.get("included") or []) if isinstance(objects, dict) else set()
        recorded: set[str] = set()
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("status") not in _STORED_OBJECTS:
                continue
            path = str(entry.get("path"))
            recorded.add(path)
            if path in stored:
                if not self._matches(prefix + path, entry):
                    self.problem(f"object {path}: content does not match the recorded checksum")
            elif path in included:
                self.problem(f"object {path}: missing from the bundle (the manifest lists it)")
            else:
                self.bundle.found.unchecked.append(
                    f"pack {self.id}: object {path}: not included in the bundle; its content "
                    "was not checked"
                )
        for path in sorted(stored - recorded):
            self.problem(f"object {path}: in the bundle but not in the pack's diff")

    def _matches(self, name: str, entry: dict[str, Any]) -> bool:
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
        with self.bundle.archive.open(name) as source:
            while chunk := source.read(_READ):
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
        etag = str(entry.get("etag") or "")
        return (
            sha256.hexdigest() == entry.get("sha256")
            and size == entry.get("size")
            and (not _MD5.fullmatch(etag) or md5.hexdigest() == etag)
        )
