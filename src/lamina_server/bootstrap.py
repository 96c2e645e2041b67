"""First start: the admin user, organization and key; the SDK config file; the signing secret.

The SDK config file (``~/.lamina/config.toml`` by default) names one server: its ``api_key`` and
``endpoint_url``, and, when this server wrote it, the ``server_data_dir`` the key belongs to (the
SDK reads only the first two). A first start never takes that file over from another server:
:func:`config_conflict` says when the file already holds the key of a server at another address,
or of another data directory that still exists, and then the CLI refuses to start (before it
creates anything) and the bootstrap leaves the file alone.
"""

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

DATA_DIR_KEY = "server_data_dir"
# Where the SDK sends requests when the config file names no endpoint (lamina._config).
SDK_DEFAULT_ENDPOINT_URL = "http://127.0.0.1:8710"


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
    record it in the SDK config file (unless told not to, or the file names another server)."""
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
    if not config.write_config or config.config_path is None:
        return
    conflict = config_conflict(config.config_path, config.endpoint_url, config.data_dir)
    if conflict is not None:
        print(
            f"Did not write {config.config_path}: {conflict}. Use this server with "
            f"LAMINA_ENDPOINT_URL={config.endpoint_url} and LAMINA_API_KEY set to the key above.",
            file=sys.stdout,
            flush=True,
        )
        return
    write_client_config(
        config.config_path,
        api_key=created.api_key,
        endpoint_url=config.endpoint_url,
        data_dir=config.data_dir,
    )
    print(f"Wrote {config.config_path} (api_key, endpoint_url).", file=sys.stdout, flush=True)


def is_first_start(config: ServerConfig) -> bool:
    """Whether starting creates a new database (and so a key to record): an embedded database
    that does not exist yet. (A server on an external database is never asked.)"""
    return config.database_url is None and not (config.data_dir / "metadata.db").exists()


def first_start_conflict(config: ServerConfig) -> str | None:
    """Why this start must not go ahead: it would create a key and record it in a config file
    that holds another server's key. ``None`` when there is nothing in the way."""
    if not config.write_config or config.config_path is None or not is_first_start(config):
        return None
    conflict = config_conflict(config.config_path, config.endpoint_url, config.data_dir)
    if conflict is None:
        return None
    return (
        f"{config.config_path}: {conflict}, and this first start would replace it. "
        "Start again with --config-path FILE to write this server's key to a file of its own, "
        "or with --no-write-config to only print it (or remove api_key from that file to make "
        "this server the SDK's default)."
    )


def config_conflict(path: Path, endpoint_url: str, data_dir: Path) -> str | None:
    """Why recording a new key of the server at ``endpoint_url`` on ``data_dir`` in the config
    file ``path`` would take the file over from another server, or ``None``.

    The file may be taken when it holds no key, or the key of a server at the same address
    whose data directory is this one, is gone, or is not recorded (a server at this address is
    not running, since this one listens there).
    """
    data = _read_toml(path)
    if not data.get("api_key"):
        return None
    recorded = data.get("endpoint_url")
    if not isinstance(recorded, str) or not recorded:
        recorded = SDK_DEFAULT_ENDPOINT_URL
    if recorded.rstrip("/") != endpoint_url.rstrip("/"):
        return f"it holds the API key of the server at {recorded}"
    owner = data.get(DATA_DIR_KEY)
    if isinstance(owner, str) and owner:
        owner_dir = Path(owner)
        if owner_dir.resolve() != data_dir.resolve() and (owner_dir / "metadata.db").exists():
            return f"it holds the API key of the server with data directory {owner_dir}"
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data


def write_client_config(path: Path, *, api_key: str, endpoint_url: str, data_dir: Path) -> None:
    """Record ``api_key``, ``endpoint_url`` and the server's ``data_dir`` in the SDK's TOML
    config file.

    Other settings already in the file are kept. The directory is created with mode 0700 and
    the file is replaced atomically with mode 0600, since it holds a secret.
    """
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read_toml(path)
    data["api_key"] = api_key
    data["endpoint_url"] = endpoint_url
    data[DATA_DIR_KEY] = str(data_dir.resolve())
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
