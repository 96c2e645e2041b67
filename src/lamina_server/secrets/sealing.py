"""The server's secrets key, and sealing values under it (AES-256-GCM).

The key never enters the database: it is ``LAMINA_SECRETS_KEY`` (base64 of 32 bytes) when that
is set, else the file ``<data dir>/secrets.key`` (32 raw bytes, mode 0600, created on first
start). A copy of the database alone therefore reveals no value.

Each value is sealed with a fresh 96-bit nonce, and its associated data names the scope and key
it is stored under, so a ciphertext moved to another row (another repository, another agent,
another key) no longer decrypts.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lamina_server.bootstrap import load_or_create_secret
from lamina_server.secrets.errors import SecretsKeyError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ENV = "LAMINA_SECRETS_KEY"
KEY_FILE = "secrets.key"
_AAD_PREFIX = b"lamina/secret/v1\x00"


@dataclass(frozen=True, slots=True)
class SecretScope:
    """What a secret belongs to: a repository or an agent, by id."""

    type: str  # "repository" | "agent"
    id: str

    @classmethod
    def repository(cls, repository_id: str) -> SecretScope:
        return cls("repository", repository_id)

    @classmethod
    def agent(cls, agent_id: str) -> SecretScope:
        return cls("agent", agent_id)


def load_key(data_dir: Path, environ: Mapping[str, str]) -> bytes:
    """The server's secrets key: from ``LAMINA_SECRETS_KEY`` when set, else from (or, on first
    start, into) ``<data dir>/secrets.key``. :class:`SecretsKeyError` when it is not 32 bytes."""
    encoded = environ.get(KEY_ENV)
    if encoded is not None:
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SecretsKeyError(f"{KEY_ENV} is not base64") from None
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(
                f"{KEY_ENV} decodes to {len(key)} bytes; an AES-256 key is {KEY_BYTES}"
            )
        return key
    path = data_dir / KEY_FILE
    key = load_or_create_secret(path, KEY_BYTES)
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(f"{path} holds {len(key)} bytes; an AES-256 key is {KEY_BYTES}")
    return key


def _associated_data(scope: SecretScope, key: str) -> bytes:
    # None of the three holds a NUL (a key matches KEY_PATTERN), so the encoding is unambiguous.
    return _AAD_PREFIX + "\x00".join((scope.type, scope.id, key)).encode("utf-8")


class Sealer:
    """Seals and opens values under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"a secrets key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, scope: SecretScope, key: str, value: str) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)`` of ``value`` stored as ``key`` in ``scope``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), _associated_data(scope, key))
        return nonce, sealed

    def open(self, scope: SecretScope, key: str, nonce: bytes, ciphertext: bytes) -> str | None:
        """The value, or ``None`` when the ciphertext is not one this key sealed for this scope
        and key (altered, moved, or sealed under another key)."""
        try:
            plain = self._aead.decrypt(nonce, ciphertext, _associated_data(scope, key))
        except (InvalidTag, ValueError):
            return None
        return plain.decode("utf-8")
