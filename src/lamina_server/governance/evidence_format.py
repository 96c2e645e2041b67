"""The evidence formats, as the server writes them (pure; :mod:`lamina.evidence` is the
verifier's independent reading of the same text, and ``docs/governance.md`` (Evidence packs) describes both).

A pack document (``lamina.evidence/1``) is JSON::

    {"format", "id", "kind", "organization": {"id", "name"}, "repository": {"id", "name"},
     "subject": {"type", "id"}, "created_at", "key_id",
     "parts": [{"name", "body", "prev", "hash"}, ...], "chain_hash"}

The parts are, in this order, ``inputs``, ``policy_decisions``, ``approval``, ``outputs`` and
``audit``. Each part's ``hash`` is the SHA-256 hex digest of the canonical JSON of
``{"name", "body", "prev"}``, where ``prev`` is the hash of the part before it (64 zeros for
the first); ``chain_hash`` is the last part's hash. The document is signed whole: an Ed25519
signature over its canonical JSON (compact, keys sorted, UTF-8 — what
``json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()``
gives).

A bundle (``lamina.evidence-bundle/1``) is a zip: ``manifest.json`` and ``manifest.sig``
(the export, signed when it was made: which packs, which objects of each are included and which
were left out over the size cap), ``public_key.pem`` (a convenience: verify against the key the
server publishes), and for each pack ``packs/<id>/evidence.json``, ``packs/<id>/evidence.sig``
(base64) and ``packs/<id>/objects/<path>`` (the bytes of the objects its commit added or
modified).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

FORMAT = "lamina.evidence/1"
BUNDLE_FORMAT = "lamina.evidence-bundle/1"
PART_NAMES = ("inputs", "policy_decisions", "approval", "outputs", "audit")
GENESIS = "0" * 64
SANDBOX_RUN = "sandbox_run"
APPROVED_COMMIT = "approved_commit"

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
PUBLIC_KEY = "public_key.pem"


def canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_hash(name: str, body: Any, prev: str) -> str:
    return sha256_hex(canonical({"name": name, "body": body, "prev": prev}))


def chain(bodies: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The parts of a document, in :data:`PART_NAMES` order and hashed into a chain, and the
    chain's hash."""
    parts: list[dict[str, Any]] = []
    prev = GENESIS
    for name in PART_NAMES:
        body = bodies[name]
        digest = part_hash(name, body, prev)
        parts.append({"name": name, "body": body, "prev": prev, "hash": digest})
        prev = digest
    return parts, prev


def document(
    *,
    pack_id: str,
    kind: str,
    organization: Mapping[str, str],
    repository: Mapping[str, str],
    subject: Mapping[str, str],
    created_at: str,
    key_id: str,
    bodies: Mapping[str, Any],
) -> dict[str, Any]:
    parts, chain_hash = chain(bodies)
    return {
        "format": FORMAT,
        "id": pack_id,
        "kind": kind,
        "organization": dict(organization),
        "repository": dict(repository),
        "subject": dict(subject),
        "created_at": created_at,
        "key_id": key_id,
        "parts": parts,
        "chain_hash": chain_hash,
    }


def commit_fields(
    *,
    repository_id: str,
    parents: Sequence[str],
    tree: str,
    message: str,
    metadata: Mapping[str, str],
    committer: tuple[str, str, str],
    created_at_micros: int,
) -> dict[str, Any]:
    """What a commit's id is the SHA-256 of (:func:`lamina_server.versioning.rows.commit_record`),
    field for field; the canonical JSON here is byte for byte the engine's (its
    :mod:`~lamina_server.versioning.canonical` says so), so a verifier recomputes the id."""
    return {
        "repository": repository_id,
        "parents": list(parents),
        "tree": tree,
        "message": message,
        "metadata": dict(metadata),
        "committer": list(committer),
        "created_at": created_at_micros,
    }


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def pack_folder(pack_id: str) -> str:
    return f"packs/{pack_id}/"
