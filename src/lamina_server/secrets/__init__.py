"""Secrets: values kept for a repository or an agent, encrypted at rest under a key kept
outside the database, and handed to the sandboxes of that repository or agent as environment
variables (:mod:`lamina_server.sandboxes.environment`)."""

from lamina_server.secrets.errors import (
    InvalidSecretKey,
    InvalidSecretValue,
    SecretNotFound,
    SecretsError,
    SecretsKeyError,
    SecretUnreadable,
)
from lamina_server.secrets.sealing import KEY_ENV, KEY_FILE, Sealer, SecretScope, load_key
from lamina_server.secrets.store import KEY_PATTERN, SecretEntry, Secrets

__all__ = [
    "KEY_ENV",
    "KEY_FILE",
    "KEY_PATTERN",
    "InvalidSecretKey",
    "InvalidSecretValue",
    "Sealer",
    "SecretEntry",
    "SecretNotFound",
    "SecretScope",
    "SecretUnreadable",
    "Secrets",
    "SecretsError",
    "SecretsKeyError",
    "load_key",
]
