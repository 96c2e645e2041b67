"""The server's evidence signing key (Ed25519), and signing under it.

As with the secrets key (:mod:`lamina_server.secrets.sealing`), the key never enters the
database: it is the file ``<data dir>/evidence.key`` (PKCS#8 PEM, mode 0600), created on first
start and loaded after. Its public half is published unauthenticated
(``GET /api/v1/evidence/public-key``) so that anyone can verify an evidence bundle offline.

The key id is the SHA-256 hex digest of the raw 32-byte public key: a document names the key it
was signed with, and a verifier tells at once whether it holds that key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lamina_server.governance.errors import SigningKeyError

KEY_FILE = "evidence.key"
ALGORITHM = "ed25519"


def key_id_of(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()


class SigningKey:
    """An Ed25519 private key: signs, and tells its public half and id."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        public = private_key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(raw)
        self.public_key_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str = "the key") -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{source} is not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{source} is not an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def public_json(self) -> dict[str, str]:
        """What ``GET /evidence/public-key`` answers."""
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "public_key_pem": self.public_key_pem,
        }


def load_signing_key(data_dir: Path) -> SigningKey:
    """The key in ``<data dir>/evidence.key``, created (mode 0600) on first start. A second
    process starting at the same moment reads the key the first one wrote."""
    path = data_dir / KEY_FILE
    try:
        return SigningKey.from_pem(path.read_bytes(), source=str(path))
    except FileNotFoundError:
        pass
    key = SigningKey.generate()
    # Written whole under a temporary name, then linked into place: a process that starts at
    # the same moment never reads half a key, and the first link wins.
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_pem())
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return SigningKey.from_pem(path.read_bytes(), source=str(path))
    finally:
        tmp.unlink(missing_ok=True)
    return key
