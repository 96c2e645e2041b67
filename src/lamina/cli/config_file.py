"""The SDK's config file as ``lamina auth`` edits it: set or drop top-level settings, keep the
rest of the file as it is, and replace it atomically with mode 0600 (it holds a secret)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from lamina._config import read_config_file

_TABLE = re.compile(r"^\s*\[")


def _setting(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*=")


def update_config(path: Path, settings: Mapping[str, str | None]) -> None:
    """Set each ``settings`` name to its value (``None``: remove it) in the file at ``path``;
    other lines stay. A file that ends up empty is removed. The file is checked first
    (:class:`~lamina.ConfigurationError` for one that is broken)."""
    read_config_file(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    top = next((i for i, line in enumerate(lines) if _TABLE.match(line)), len(lines))
    head, tables = lines[:top], lines[top:]
    patterns = [_setting(name) for name in settings]
    head = [line for line in head if not any(pattern.match(line) for pattern in patterns)]
    new = [f"{name} = {json.dumps(value)}" for name, value in settings.items() if value is not None]
    result = [*new, *head, *tables]
    if not any(line.strip() and not line.lstrip().startswith("#") for line in result):
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(result) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
