"""Server configuration: where data lives, where the server listens, what it bootstraps."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def default_data_dir() -> Path:
    return Path.home() / ".lamina" / "data"


def default_config_path() -> Path:
    return Path.home() / ".lamina" / "config.toml"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app factory needs; built by the CLI or by tests.

    ``public_url`` is the externally visible base URL (scheme, host and port) used for absolute
    signed URLs; when unset, routes derive it from the request. ``database_url`` overrides the
    embedded SQLite database in ``data_dir``.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8710
    org: str = "local"
    public_url: str | None = None
    database_url: str | None = None
    config_path: Path | None = field(default_factory=default_config_path)
    write_config: bool = True
    access_log: bool = False

    @property
    def endpoint_url(self) -> str:
        """The URL clients use to reach this server (what the bootstrap config file records)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


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


def write_client_config(path: Path, *, api_key: str, endpoint_url: str) -> None:
    """Record ``api_key`` and ``endpoint_url`` in the SDK's TOML config file.

    Other settings already in the file are kept. The directory is created with mode 0700 and
    the file is replaced atomically with mode 0600, since it holds a secret.
    """
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, Any] = {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data["api_key"] = api_key
    data["endpoint_url"] = endpoint_url
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_dump_toml(data))
    os.replace(tmp, path)
