"""Configuration resolution: explicit > environment > ~/.lamina/config.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina import ConfigurationError, InvalidArgumentTypeError
from lamina._config import (
    API_KEY_ENV,
    DEFAULT_ENDPOINT_URL,
    DEFAULT_SANDBOX_IMAGE,
    DEFAULT_SANDBOX_IMAGE_ENV,
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
    monkeypatch.delenv(DEFAULT_SANDBOX_IMAGE_ENV, raising=False)
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


def test_empty_environment_variables_count_as_unset(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(home, 'api_key = "tuk-file"\nendpoint_url = ""\n')
    monkeypatch.setenv(API_KEY_ENV, "")
    monkeypatch.setenv(ENDPOINT_URL_ENV, "")
    config = resolve_config()
    assert (config.api_key, config.endpoint_url) == ("tuk-file", DEFAULT_ENDPOINT_URL)


@pytest.mark.parametrize("name", ["api_key", "endpoint_url"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_explicit_empty_setting_is_an_error_not_a_fall_back(
    home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(API_KEY_ENV, "tuk-env")
    with pytest.raises(ConfigurationError, match=f"{name}=.*empty"):
        resolve_config(**{name: value})


def test_an_explicit_setting_of_the_wrong_type_is_a_type_error(home: Path) -> None:
    with pytest.raises(InvalidArgumentTypeError, match="api_key must be a str, got int"):
        resolve_config(api_key=42)  # type: ignore[arg-type]


def test_environ_and_path_can_be_passed(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text('api_key = "tuk-custom"\n', encoding="utf-8")
    config = resolve_config(environ={ENDPOINT_URL_ENV: "http://e:4"}, config_path=path)
    assert (config.api_key, config.endpoint_url) == ("tuk-custom", "http://e:4")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('endpoint_url = "http://x"\napi_key = [unterminated', "line 2"),
        ('api_key = "ok"\n\nendpoint_url = true\n', "line 3: endpoint_url must be a string"),
        ("[api_key]\nnested = 'x'\n", "line 1: api_key must be a string"),
        ('# comment\napi_key = "\xff\xfe not utf-8"', "line 2: the config file is not UTF-8"),
    ],
)
def test_a_broken_file_is_an_error_naming_the_file_and_line(
    home: Path, text: str, where: str
) -> None:
    path = home / ".lamina" / "config.toml"
    path.parent.mkdir()
    path.write_bytes(text.encode("latin-1"))
    for call in (lambda: read_config_file(path), resolve_config):
        with pytest.raises(ConfigurationError) as caught:
            call()
        assert str(path) in str(caught.value)
        assert where in str(caught.value)


def test_a_broken_file_is_not_read_when_every_setting_is_given(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(home, "api_key = [unterminated")
    monkeypatch.setenv(API_KEY_ENV, "tuk-env")
    monkeypatch.setenv(DEFAULT_SANDBOX_IMAGE_ENV, "python:3.12")
    config = resolve_config(endpoint_url="http://arg:3")
    assert (config.api_key, config.endpoint_url) == ("tuk-env", "http://arg:3")
    assert config.default_sandbox_image == "python:3.12"


def test_default_sandbox_image_resolves_like_the_other_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_config().default_sandbox_image == DEFAULT_SANDBOX_IMAGE == "host"
    write_config(home, 'default_sandbox_image = "from-file"\n')
    assert resolve_config().default_sandbox_image == "from-file"
    monkeypatch.setenv(DEFAULT_SANDBOX_IMAGE_ENV, "from-env")
    assert resolve_config().default_sandbox_image == "from-env"
    assert resolve_config(default_sandbox_image="explicit").default_sandbox_image == "explicit"
    with pytest.raises(ConfigurationError, match=DEFAULT_SANDBOX_IMAGE_ENV):
        resolve_config(default_sandbox_image=" ")


def test_a_missing_file_is_skipped_and_an_unreadable_path_is_an_error(home: Path) -> None:
    assert read_config_file(home / "nope.toml") == {}
    with pytest.raises(ConfigurationError, match="cannot read the config file"):
        read_config_file(home)  # a directory


def test_other_keys_are_ignored(home: Path) -> None:
    path = write_config(home, 'api_key = "tuk-x"\nregion = "eu"\n')
    assert read_config_file(path) == {"api_key": "tuk-x"}
