"""The CLI's path grammar: org/repo[@ref]/path, and which arguments are local."""

from __future__ import annotations

import pytest

from lamina.cli.locations import (
    LocationError,
    RemotePath,
    is_remote,
    parse_remote,
    parse_repository,
)


@pytest.mark.parametrize(
    ("argument", "remote"),
    [
        ("acme/data/raw/", True),
        ("acme/data", True),
        ("lamina://acme/data", True),
        ("lamina://./x", True),
        ("./raw/x.csv", False),
        ("../x/y", False),
        ("/tmp/x", False),
        ("~/x/y", False),
        ("-", False),
        ("report.csv", False),
    ],
)
def test_what_is_remote(argument: str, remote: bool) -> None:
    assert is_remote(argument) is remote


def test_parse_remote() -> None:
    assert parse_remote("acme/data") == RemotePath("acme", "data", None, "")
    assert parse_remote("lamina://acme/data@3f2a/raw/") == RemotePath(
        "acme", "data", "3f2a", "raw/"
    )
    located = parse_remote("acme/data/raw/a@b.csv")
    assert located == RemotePath("acme", "data", None, "raw/a@b.csv")
    assert (located.name, located.is_folder, located.repository) == ("a@b.csv", False, "acme/data")
    folder = parse_remote("acme/data/raw/")
    assert folder.is_folder and folder.join("x/y") == "raw/x/y"
    assert parse_remote("acme/data").join("x") == "x"
    assert parse_remote("acme/data/raw").join("x") == "raw/x"
    assert str(parse_remote("acme/data@c1/raw/x")) == "acme/data@c1/raw/x"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("acme", "not a repository path"),
        ("acme/", "not a repository path"),
        ("/data", "not a repository path"),
        ("acme/data@", "followed by a commit id"),
        ("acme/data//x", "empty segment"),
    ],
)
def test_parse_remote_refuses(argument: str, message: str) -> None:
    with pytest.raises(LocationError, match=message):
        parse_remote(argument)


def test_writes_and_repositories_take_no_ref_or_path() -> None:
    with pytest.raises(LocationError, match="takes no @ref"):
        parse_remote("acme/data@c1/x", allow_ref=False)
    assert parse_repository("acme/data/") == RemotePath("acme", "data", None, "")
    with pytest.raises(LocationError, match="without a path"):
        parse_repository("acme/data/x")
