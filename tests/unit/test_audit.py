"""``lamina.audit.verify_entries``: a chain of entries hashed as the server hashes them
verifies, and each kind of tampering names the first broken entry."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from lamina import AuditEntry
from lamina._converter import make_converter
from lamina.audit import GENESIS, entry_hash, verify_entries


def chain(count: int, start: int = 1) -> list[dict[str, Any]]:
    """``count`` linked entries from ``seq`` ``start`` (after GENESIS or a made-up hash)."""
    entries: list[dict[str, Any]] = []
    previous = GENESIS if start == 1 else "f" * 64
    for seq in range(start, start + count):
        entry: dict[str, Any] = {
            "id": f"e{seq}",
            "organization_id": "org-1",
            "seq": seq,
            "timestamp_us": 1_700_000_000_000_000 + seq,
            "created_at": f"2023-11-14T22:13:20.{seq:06d}Z",
            "principal_type": "user",
            "principal_id": "u-1",
            "principal_name": "ada",
            "action": "PutObject",
            "resource": "acme/data",
            "resource_kind": "object",
            "resource_id": f"dätä/{seq}.csv",
            "outcome": "success",
            "request_id": f"req-{seq}",
            "client_address": "127.0.0.1",
            "details": {"size": seq, "nested": {"b": 1, "a": [1, 2]}},
            "prev_hash": previous,
        }
        entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
        entries.append(entry)
    return entries


def test_an_intact_chain_verifies_as_dicts_and_as_models() -> None:
    entries = chain(4)
    assert verify_entries(entries) is None
    models = make_converter().structure(entries, list[AuditEntry])
    assert verify_entries(models) is None
    assert entry_hash(models[2]) == entries[2]["hash"]
    assert verify_entries([]) is None


def test_the_hash_is_sha256_of_the_canonical_json_of_every_field_but_hash() -> None:
    import hashlib
    import json

    entry = chain(1)[0]
    fields = {name: value for name, value in entry.items() if name != "hash"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry["hash"] == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("index", "change", "problem"),
    [
        (2, {"principal_name": "mallory"}, "does not match its hash"),
        (1, {"details": {"size": 99, "nested": {"b": 1, "a": [1, 2]}}}, "does not match"),
        (0, {"prev_hash": "1" * 64}, "genesis"),
    ],
)
def test_an_altered_entry_is_named(index: int, change: dict[str, Any], problem: str) -> None:
    entries = chain(4)
    entries[index] = {**entries[index], **change}
    if "prev_hash" in change:  # a forger who also fixes the entry's own hash
        entries[index]["hash"] = entry_hash(entries[index])
    broken = verify_entries(entries)
    assert broken is not None
    assert (broken.seq, broken.id, broken.entry) == (index + 1, f"e{index + 1}", entries[index])
    assert problem in broken.problem


def test_a_removed_or_relinked_entry_breaks_the_next_link() -> None:
    entries = chain(4)
    relinked = {**entries[2], "prev_hash": "2" * 64}
    relinked["hash"] = entry_hash(relinked)
    broken = verify_entries([*entries[:2], relinked, entries[3]])
    assert broken is not None and (broken.seq, broken.problem) == (
        3,
        "its prev_hash is not the hash of the entry before it",
    )
    # A model altered after the fact: its stored hash no longer matches.
    models = make_converter().structure(entries, list[AuditEntry])
    models[3] = attrs.evolve(models[3], outcome="denied")
    broken = verify_entries(models)
    assert broken is not None and broken.seq == 4 and broken.entry is models[3]


def test_entries_that_are_not_consecutive_are_checked_one_by_one() -> None:
    entries = chain(6, start=10)
    assert verify_entries(entries[::2]) is None  # a filtered listing: 10, 12, 14
    assert verify_entries(entries[3:]) is None  # a page from the middle of the chain


def test_an_entry_without_a_whole_seq_is_broken() -> None:
    entry = {**chain(1)[0], "seq": "1"}
    broken = verify_entries([entry])
    assert broken is not None and broken.seq == -1 and "seq" in broken.problem
