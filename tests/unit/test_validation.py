"""Path, metadata, content type, checksum and size validation: each failure is a 400 naming
the field and the problem."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina_server.api.errors import ApiError
from lamina_server.api.params import PATH_PATTERN
from lamina_server.api.validation import (
    DEFAULT_CONTENT_TYPE,
    normalize_etag,
    validate_content_type,
    validate_delimiter,
    validate_metadata,
    validate_path,
    validate_prefix,
    validate_size,
)


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "a/b/c.txt",
        "..a/b..",
        "a/...",
        "ünïcödé/路径/🙂",
        "x" * 1024,
        "é" * 512,
        "with space/and\ttab",
    ],
)
def test_valid_paths_pass_through(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (None, "path is required"),
        ("", "path must not be empty"),
        ("/abs", "must not start with '/'"),
        ("a/../b", "'..' segment"),
        ("..", "'..' segment"),
        ("a/..", "'..' segment"),
        ("../a", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("./a", "'.' segment"),
        ("a/.", "'.' segment"),
        (".", "'.' segment"),
        ("a//b", "an empty segment"),
        ("dir/", "an empty segment"),
        ("a\x00b", "NUL"),
        ("x" * 1025, "1025 bytes of UTF-8; the limit is 1024"),
        ("é" * 513, "1026 bytes"),
        ("bad\udcffsurrogate", "not valid UTF-8"),
    ],
)
def test_invalid_paths_are_400s_naming_the_problem(path: str | None, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        validate_path(path)
    assert info.value.status_code == 400
    assert info.value.code == "invalid_path"
    assert problem in info.value.message


def test_path_errors_name_the_field() -> None:
    with pytest.raises(ApiError, match="destination_path must not start"):
        validate_path("/x", "destination_path")


def test_prefix_and_delimiter() -> None:
    assert validate_prefix(None) == ""
    assert validate_prefix("a/") == "a/"
    assert validate_delimiter("") is None
    assert validate_delimiter("/") == "/"
    for bad_prefix in ("a\x00", "x" * 1025):
        with pytest.raises(ApiError):
            validate_prefix(bad_prefix)
    with pytest.raises(ApiError, match="delimiter"):
        validate_delimiter("x" * 17)


def test_metadata_accepts_header_safe_pairs() -> None:
    assert validate_metadata(None) == {}
    assert validate_metadata({"Owner": "ada", "x-y_z.1": "ünï cödé"}) == {
        "Owner": "ada",
        "x-y_z.1": "ünï cödé",
    }


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        (["a"], "must be an object"),
        ({"": "v"}, "must be non-empty"),
        ({"bad key": "v"}, "'bad key'"),
        ({"k\n": "v"}, "X-Tilde-Meta"),
        ({"k": 1}, "must be a string"),
        ({"k": "line\r\nbreak"}, "control characters"),
        ({"k": "x" * 9000}, "the limit is 8192"),
    ],
)
def test_bad_metadata_is_rejected(metadata: object, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        validate_metadata(metadata)
    assert info.value.status_code == 400
    assert problem in info.value.message


def test_content_type() -> None:
    assert validate_content_type(None) == DEFAULT_CONTENT_TYPE
    assert validate_content_type("") == DEFAULT_CONTENT_TYPE
    assert validate_content_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    for bad in ("text/plain\r\nX-Evil: 1", "tëxt/plain", "x" * 256, 5):
        with pytest.raises(ApiError, match="content_type"):
            validate_content_type(bad)


def test_etags_tolerate_quotes_and_case() -> None:
    digest = "0123456789abcdef0123456789abcdef"
    assert normalize_etag(digest, "checksum") == digest
    assert normalize_etag(f'"{digest.upper()}"', "checksum") == digest
    assert normalize_etag(f'"{digest}-12"', "etag") == f"{digest}-12"
    for bad in ("", "abc", digest + "0", f"{digest}-0", 7):
        with pytest.raises(ApiError, match="checksum"):
            normalize_etag(bad, "checksum")


def test_size() -> None:
    assert validate_size(None) is None
    assert validate_size(0) == 0
    for bad in (-1, True, "5", 1.5):
        with pytest.raises(ApiError, match="size_bytes must be a non-negative integer"):
            validate_size(bad)


@given(st.text(st.sampled_from("ab./\x00é"), max_size=12))
def test_the_documented_path_pattern_is_the_rule_paths_are_checked_by(path: str) -> None:
    # docs/api/openapi.json gives object paths this pattern; the server checks validate_path.
    documented = re.fullmatch(PATH_PATTERN, path) is not None
    try:
        validate_path(path)
    except ApiError:
        assert not documented, path
    else:
        assert documented, path
