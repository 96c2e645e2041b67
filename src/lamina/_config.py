"""Where the client's API key and endpoint come from.

Each setting resolves as: explicit argument > environment (``LAMINA_API_KEY``,
``LAMINA_ENDPOINT_URL``, ``LAMINA_DEFAULT_SANDBOX_IMAGE``) > the config file
``~/.lamina/config.toml`` (keys ``api_key``, ``endpoint_url`` and ``default_sandbox_image``; the
first two are written by ``lamina server``) > the default (no key; endpoint
:data:`DEFAULT_ENDPOINT_URL`; image :data:`DEFAULT_SANDBOX_IMAGE`, the reference server's own
default image). An explicit empty string (``api_key=""``) is a
``ConfigurationError``, never a silent fall-back; an empty environment variable counts as unset.
The file's location is resolved at call time; a missing file is skipped, and a file that
cannot be read or is not valid TOML with string values is a ``ConfigurationError`` naming the
file and the line. A missing key is not an error here: the client raises ``ConfigurationError``
at its first request.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

from lamina._errors import ConfigurationError, InvalidArgumentTypeError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_ENDPOINT_URL = "http://127.0.0.1:8710"
API_KEY_ENV = "LAMINA_API_KEY"
ENDPOINT_URL_ENV = "LAMINA_ENDPOINT_URL"
DEFAULT_SANDBOX_IMAGE = "host"
DEFAULT_SANDBOX_IMAGE_ENV = "LAMINA_DEFAULT_SANDBOX_IMAGE"
_ENV = {
    "api_key": API_KEY_ENV,
    "endpoint_url": ENDPOINT_URL_ENV,
    "default_sandbox_image": DEFAULT_SANDBOX_IMAGE_ENV,
}


@frozen
class Config:
    api_key: str | None
    endpoint_url: str
    default_sandbox_image: str = DEFAULT_SANDBOX_IMAGE


def default_config_path() -> Path:
    """``~/.lamina/config.toml`` for the current user (``$HOME`` is read at each call)."""
    return Path.home() / ".lamina" / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """The non-empty settings ``api_key``/``endpoint_url``/``default_sandbox_image`` of a config file (``{}`` when there
    is no file); :class:`~lamina.ConfigurationError` for a file that is broken."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigurationError(f"{path}, line {line}: the config file is not UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: the config file is not valid TOML: {exc}") from exc
    settings: dict[str, str] = {}
    for key in _ENV:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{path}, line {_line_of(text, key)}: {key} must be a string "
                f'(e.g. {key} = "..."), got {type(value).__name__}'
            )
        if value:
            settings[key] = value
    return settings


def _line_of(text: str, key: str) -> int | str:
    """The line where ``key`` is first set or opened as a table (``"?"`` if not found)."""
    pattern = re.compile(rf"^\s*(?:\[\s*)?[\"']?{re.escape(key)}\b")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return "?"


def resolve_config(
    *,
    api_key: str | None = None,
    endpoint_url: str | None = None,
    default_sandbox_image: str | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Config:
    """Resolve the settings; the file is read only when an explicit value or env var is missing."""
    explicit = {
        "api_key": api_key,
        "endpoint_url": endpoint_url,
        "default_sandbox_image": default_sandbox_image,
    }
    for name, value in explicit.items():
        if value is not None and not isinstance(value, str):
            raise InvalidArgumentTypeError(f"{name} must be a str, got {type(value).__name__}")
        if value is not None and not value.strip():
            raise ConfigurationError(
                f"{name}={value!r} was passed explicitly but is empty: pass the "
                f"{name.replace('_', ' ')} itself, or leave {name} out to read "
                f"{_ENV[name]} and ~/.lamina/config.toml"
            )
    env = os.environ if environ is None else environ
    settings = {name: value or env.get(_ENV[name]) or None for name, value in explicit.items()}
    if None in settings.values():
        path = config_path if config_path is not None else _home_config_path()
        file = read_config_file(path) if path is not None else {}
        settings = {name: value or file.get(name) for name, value in settings.items()}
    return Config(
        api_key=settings["api_key"],
        endpoint_url=(settings["endpoint_url"] or DEFAULT_ENDPOINT_URL).rstrip("/"),
        default_sandbox_image=settings["default_sandbox_image"] or DEFAULT_SANDBOX_IMAGE,
    )


def _home_config_path() -> Path | None:
    try:
        return default_config_path()
    except RuntimeError:  # no home directory can be determined
        return None
