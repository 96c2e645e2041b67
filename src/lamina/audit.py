"""Offline checks of audit log entries: ``lamina.audit.verify_entries(entries)``.

An organization's audit log is a hash chain: each entry's ``hash`` is the SHA-256 (hex) of the
canonical JSON (keys sorted, no spaces, UTF-8) of all its other fields, and its ``prev_hash`` is
the ``hash`` of the entry before it (``seq - 1``; sixty-four zeros before the first). Altering,
removing or reordering an entry breaks a link. This module recomputes the hashes of entries
fetched with ``org.audit_log.list()`` (or read as JSON objects) and follows the links between
those that are consecutive in ``seq``, without talking to anyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import attrs

from lamina.evidence import canonical
from lamina.models.governance import AuditEntry

__all__ = ["GENESIS", "ChainBreak", "entry_hash", "verify_entries"]

#: The ``prev_hash`` of an organization's first entry (``seq`` 1).
GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainBreak:
    """The first entry :func:`verify_entries` found wrong: its ``seq``, ``id``, the entry as
    given, and what is wrong with it."""

    seq: int
    id: str
    entry: AuditEntry | Mapping[str, Any]
    problem: str


def _fields(entry: AuditEntry | Mapping[str, Any]) -> dict[str, Any]:
    return attrs.asdict(entry) if isinstance(entry, AuditEntry) else dict(entry)


def entry_hash(entry: AuditEntry | Mapping[str, Any]) -> str:
    """The hash an entry should carry: SHA-256 (hex) of the canonical JSON of its fields but
    ``hash``."""
    fields = _fields(entry)
    fields.pop("hash", None)
    return hashlib.sha256(canonical(fields)).hexdigest()


def verify_entries(entries: Iterable[AuditEntry | Mapping[str, Any]]) -> ChainBreak | None:
    """The first broken entry of ``entries`` (in the order given, oldest first, as the API
    lists them), or ``None`` when all are intact.

    An entry is broken when its ``hash`` is not the hash of its fields, when it follows the
    entry of the previous ``seq`` but its ``prev_hash`` is not that entry's ``hash``, or when
    it is the first of the chain (``seq`` 1) and its ``prev_hash`` is not :data:`GENESIS`.
    Entries that are not consecutive (a filtered listing) are checked one by one.
    """
    previous: dict[str, Any] | None = None
    for entry in entries:
        fields = _fields(entry)
        seq, entry_id = fields.get("seq"), str(fields.get("id", ""))
        if not isinstance(seq, int) or isinstance(seq, bool):
            return ChainBreak(-1, entry_id, entry, f"its seq is not a whole number: {seq!r}")
        problem = None
        if entry_hash(fields) != fields.get("hash"):
            problem = "its content does not match its hash (altered)"
        elif seq == 1 and fields.get("prev_hash") != GENESIS:
            problem = "it is the first entry but its prev_hash is not the genesis hash"
        elif (
            previous is not None
            and seq == previous["seq"] + 1
            and fields.get("prev_hash") != previous.get("hash")
        ):
            problem = "its prev_hash is not the hash of the entry before it"
        if problem is not None:
            return ChainBreak(seq, entry_id, entry, problem)
        previous = fields
    return None
