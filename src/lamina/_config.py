"""Where the client's API key and endpoint come from.

Each setting resolves as: explicit argument > environment (``LAMINA_API_KEY``,
``LAMINA_ENDPOINT_URL``) > the config file ``~/.lamina/config.toml`` (keys ``api_key`` and
``endpoint_url``, as written by ``lamina server`` and ``lamina auth login``) > the default
(no key; endpoint :data:`DEFAULT_ENDPOINT_URL`). Empty strings count as unset. The file's
location is resolved at call time; a missing, unreadable or malformed file is ignored.
A missing key is not an error here: the client raises ``ConfigurationError`` at its first request.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_ENDPOINT_URL = "http://127.0.0.1:8710"
API_KEY_ENV = "LAMINA_API_KEY"
ENDPOINT_URL_ENV = "LAMINA_ENDPOINT_URL"


@frozen
class Config:
    api_key: str | None
    endpoint_url: str


def default_config_path() -> Path:
    """``~/.lamina/config.toml`` for the current user (``$HOME`` is read at each call)."""
    return Path.home() / ".lamina" / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """The non-empty string settings ``api_key``/``endpoint_url`` of a config file, if any."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {
        key: value
        for key in ("api_key", "endpoint_url")
        if isinstance(value := data.get(key), str) and value
    }


def resolve_config(
    *,
    api_key: str | None = None,
    endpoint_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Config:
    """Resolve both settings; the file is read only when an explicit value or env var is missing."""
    env = os.environ if environ is None else environ
    api_key = api_key or env.get(API_KEY_ENV) or None
    endpoint_url = endpoint_url or env.get(ENDPOINT_URL_ENV) or None
    if api_key is None or endpoint_url is None:
        path = config_path if config_path is not None else _home_config_path()
        file = read_config_file(path) if path is not None else {}
        api_key = api_key or file.get("api_key")
        endpoint_url = endpoint_url or file.get("endpoint_url")
    return Config(api_key=api_key, endpoint_url=(endpoint_url or DEFAULT_ENDPOINT_URL).rstrip("/"))


def _home_config_path() -> Path | None:
    try:
        return default_config_path()
    except RuntimeError:  # no home directory can be determined
        return None
