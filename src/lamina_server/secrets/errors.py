"""Secrets errors. The HTTP layer maps each class to one status and code.

::

    SecretsError
    ├── SecretNotFound        no secret of that key in the scope
    ├── InvalidSecretKey      the key does not match KEY_PATTERN
    ├── InvalidSecretValue    the value is empty, or cannot be an environment variable's value
    ├── SecretUnreadable      the stored ciphertext does not decrypt under the server's key
    └── SecretsKeyError       the server's key is not 32 bytes: the server does not start
"""

from __future__ import annotations


class SecretsError(Exception):
    """Root of the secrets domain's errors; ``str()`` is a human message (never a value)."""


class SecretNotFound(SecretsError):
    def __init__(self, key: str) -> None:
        super().__init__(f"secret {key!r} not found")
        self.key = key


class InvalidSecretKey(SecretsError):
    pass


class InvalidSecretValue(SecretsError):
    pass


class SecretUnreadable(SecretsError):
    """Server-side corruption: the row was altered, or the server's key is not the one that
    sealed it. Writing the secret again replaces it."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"secret {key!r} cannot be decrypted with this server's secrets key (the stored "
            "value was altered, or the key changed); write it again to replace it"
        )
        self.key = key


class SecretsKeyError(SecretsError):
    """The server's secrets key is unusable; the message says where it came from."""
