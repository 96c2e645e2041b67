"""First start: the admin user, organization and key; the SDK config file; the signing secret."""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from lamina_server.config import ServerConfig
from lamina_server.identity import Identity

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random secret kept in ``path`` (mode 0600), created on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


async def bootstrap(config: ServerConfig, identity: Identity) -> None:
    """On an empty database: create the admin user, organization and key, print the key and
    record it in the SDK config file (unless told not to)."""
    created = await identity.bootstrap(config.org)
    if created is None:
        return
    # The key is shown before the config file is written, so a failed write cannot lose it.
    print(
        f"Created organization {config.org!r} and user {created.principal.name!r}.\n"
        f"API key (shown only once): {created.api_key}",
        file=sys.stdout,
        flush=True,
    )
    if config.write_config and config.config_path is not None:
        write_client_config(
            config.config_path, api_key=created.api_key, endpoint_url=config.endpoint_url
        )
        print(f"Wrote {config.config_path} (api_key, endpoint_url).", file=sys.stdout, flush=True)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data


def write_client_config(path: Path, *, api_key: str, endpoint_url: str) -> None:
    """Record ``api_key`` and ``endpoint_url`` in the SDK's TOML config file.

    Other settings already in the file are kept. The directory is created with mode 0700 and
    the file is replaced atomically with mode 0600, since it holds a secret.
    """
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read_toml(path)
    data["api_key"] = api_key
    data["endpoint_url"] = endpoint_url
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_dump_toml(data))
    os.replace(tmp, path)


def _toml_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        items = [_toml_value(item) for item in value]
        if any(item is None for item in items):
            return None
        return "[" + ", ".join(item for item in items if item is not None) + "]"
    return None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _dump_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and (text := _toml_value(value)) is not None:
            lines.append(f"{_toml_key(key)} = {text}")
    for key, value in table.items():
        if isinstance(value, dict):
            header = ".".join(_toml_key(part) for part in [*path, key])
            lines.append(f"\n[{header}]")
            _dump_table(value, [*path, key], lines)


def _dump_toml(data: dict[str, Any]) -> str:
    """TOML for what a config file holds: scalars, arrays of scalars and (nested) tables.
    Arrays of tables are not written."""
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines) + "\n"
