"""The server's secrets key (environment variable or key file) and AES-GCM sealing bound to a
secret's scope and key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lamina_server.secrets import (
    KEY_ENV,
    InvalidSecretKey,
    InvalidSecretValue,
    Sealer,
    SecretScope,
    SecretsKeyError,
    load_key,
)
from lamina_server.secrets.store import check_key, check_value

REPO = SecretScope.repository("0b1c5f3e-0000-4000-8000-000000000001")
OTHER_REPO = SecretScope.repository("0b1c5f3e-0000-4000-8000-000000000002")
AGENT = SecretScope.agent(REPO.id)


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_key(tmp_path, {})
    path = tmp_path / "secrets.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(tmp_path, {}) == key


def test_the_environment_variable_wins_and_no_file_is_written(tmp_path: Path) -> None:
    key = bytes(range(32))
    assert load_key(tmp_path, {KEY_ENV: base64.b64encode(key).decode() + "\n"}) == key
    assert not (tmp_path / "secrets.key").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "5 bytes")],
)
def test_a_bad_environment_key_stops_the_server(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(SecretsKeyError, match=problem):
        load_key(tmp_path, {KEY_ENV: value})


def test_a_truncated_key_file_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "secrets.key").write_bytes(b"x" * 31)
    with pytest.raises(SecretsKeyError, match="31 bytes"):
        load_key(tmp_path, {})


def test_a_sealed_value_opens_only_where_it_was_sealed() -> None:
    sealer = Sealer(bytes(32))
    nonce, sealed = sealer.seal(REPO, "TOKEN", "hunter2 ✓")
    assert b"hunter2" not in sealed and len(nonce) == 12
    assert sealer.open(REPO, "TOKEN", nonce, sealed) == "hunter2 ✓"
    assert sealer.open(REPO, "OTHER", nonce, sealed) is None
    assert sealer.open(OTHER_REPO, "TOKEN", nonce, sealed) is None
    assert sealer.open(AGENT, "TOKEN", nonce, sealed) is None
    assert Sealer(bytes([1]) * 32).open(REPO, "TOKEN", nonce, sealed) is None
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    assert sealer.open(REPO, "TOKEN", nonce, flipped) is None
    assert sealer.open(REPO, "TOKEN", b"short", sealed) is None


def test_every_seal_takes_a_fresh_nonce() -> None:
    sealer = Sealer(bytes(32))
    first, second = sealer.seal(REPO, "K", "v"), sealer.seal(REPO, "K", "v")
    assert first[0] != second[0] and first[1] != second[1]


def test_keys_and_values_are_checked() -> None:
    check_key("_a-Z9")
    check_value("x")
    for key in ("", "9", "a.b", "a" * 257):
        with pytest.raises(InvalidSecretKey, match="must match"):
            check_key(key)
    for value in ("", "a\x00b", "\ud800"):
        with pytest.raises(InvalidSecretValue, match="value: must"):
            check_value(value)
