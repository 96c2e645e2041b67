"""Configuration resolution: explicit > environment > ~/.lamina/config.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina._config import (
    API_KEY_ENV,
    DEFAULT_ENDPOINT_URL,
    ENDPOINT_URL_ENV,
    default_config_path,
    read_config_file,
    resolve_config,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory and no LAMINA_* variables."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.delenv(ENDPOINT_URL_ENV, raising=False)
    return tmp_path


def write_config(home: Path, text: str) -> Path:
    path = home / ".lamina" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_configuration(home: Path) -> None:
    config = resolve_config()
    assert config.api_key is None
    assert config.endpoint_url == DEFAULT_ENDPOINT_URL == "http://127.0.0.1:8710"


def test_config_file_is_read_from_home_at_call_time(home: Path, tmp_path: Path) -> None:
    assert default_config_path() == home / ".lamina" / "config.toml"
    write_config(home, 'api_key = "tuk-file"\nendpoint_url = "http://file:1"\n')
    config = resolve_config()
    assert (config.api_key, config.endpoint_url) == ("tuk-file", "http://file:1")


def test_environment_beats_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(home, 'api_key = "tuk-file"\nendpoint_url = "http://file:1"\n')
    monkeypatch.setenv(API_KEY_ENV, "tuk-env")
    config = resolve_config()
    assert (config.api_key, config.endpoint_url) == ("tuk-env", "http://file:1")
    monkeypatch.setenv(ENDPOINT_URL_ENV, "http://env:2/")
    assert resolve_config().endpoint_url == "http://env:2"


def test_explicit_beats_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "tuk-env")
    monkeypatch.setenv(ENDPOINT_URL_ENV, "http://env:2")
    config = resolve_config(api_key="tuk-arg", endpoint_url="http://arg:3/")
    assert (config.api_key, config.endpoint_url) == ("tuk-arg", "http://arg:3")


def test_empty_strings_count_as_unset(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(home, 'api_key = "tuk-file"\nendpoint_url = ""\n')
    monkeypatch.setenv(API_KEY_ENV, "")
    config = resolve_config(api_key="", endpoint_url="")
    assert (config.api_key, config.endpoint_url) == ("tuk-file", DEFAULT_ENDPOINT_URL)


def test_environ_and_path_can_be_passed(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text('api_key = "tuk-custom"\n', encoding="utf-8")
    config = resolve_config(environ={ENDPOINT_URL_ENV: "http://e:4"}, config_path=path)
    assert (config.api_key, config.endpoint_url) == ("tuk-custom", "http://e:4")


@pytest.mark.parametrize(
    "text",
    [
        "api_key = [unterminated",
        "api_key = 42\nendpoint_url = true\n",
        "[api_key]\nnested = 'x'\n",
        "\xff\xfe not utf-8",
    ],
)
def test_malformed_or_mistyped_files_are_ignored(home: Path, text: str) -> None:
    path = home / ".lamina" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1"))
    assert read_config_file(path) == {}
    assert resolve_config().api_key is None


def test_missing_file_and_directory_path_are_ignored(home: Path) -> None:
    assert read_config_file(home / "nope.toml") == {}
    assert read_config_file(home) == {}


def test_other_keys_are_ignored(home: Path) -> None:
    path = write_config(home, 'api_key = "tuk-x"\nregion = "eu"\n')
    assert read_config_file(path) == {"api_key": "tuk-x"}
