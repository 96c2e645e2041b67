"""API keys: high-entropy random tokens with a type prefix, stored only as a SHA-256 digest.

A key carries 256 bits of randomness, so an unsalted fast hash is the right tool: there is
nothing to brute-force, and lookups stay a single indexed equality query.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIXES = {"user": "tuk-", "role": "trk-", "agent": "tak-"}


def generate_key(principal_type: str) -> str:
    return KEY_PREFIXES[principal_type] + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
