"""Where a command-line argument points: an object path ``org/repo[@ref]/path`` or a local path.

Pure: parsing only. An argument is remote when it starts with ``lamina://``; otherwise it is
local when it is ``-``, starts with ``/``, ``.`` or ``~``, or has no ``/`` at all; anything
else (``acme/data/raw/``) is remote. Write a relative local path with ``./`` in front
(``./raw/x.csv``) when it has a ``/``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from attrs import frozen

SCHEME = "lamina://"


class LocationError(ValueError):
    """An argument that is not the kind of path the command takes (the message says why)."""


@frozen
class RemotePath:
    """``org/repo[@ref]/path``: the repository, the commit it is read at (``None``: HEAD), and
    the path inside (``""``: the whole repository; a trailing ``/`` marks a folder)."""

    org: str
    repo: str
    ref: str | None
    path: str

    @property
    def repository(self) -> str:
        """``org/repo``."""
        return f"{self.org}/{self.repo}"

    @property
    def is_folder(self) -> bool:
        """The path names a folder (it is empty or ends with ``/``)."""
        return not self.path or self.path.endswith("/")

    @property
    def name(self) -> str:
        """The last segment of the path (``""`` for a folder)."""
        return "" if self.is_folder else PurePosixPath(self.path).name

    def join(self, relative: str) -> str:
        """The object path of ``relative`` below this path taken as a folder."""
        if not self.path:
            return relative
        return (self.path if self.path.endswith("/") else self.path + "/") + relative

    def __str__(self) -> str:
        ref = f"@{self.ref}" if self.ref else ""
        return f"{self.org}/{self.repo}{ref}/{self.path}"


def is_remote(argument: str) -> bool:
    """Whether ``argument`` names objects in a repository (see the module's rules)."""
    if argument.startswith(SCHEME):
        return True
    if argument == "-" or argument.startswith(("/", ".", "~")):
        return False
    return "/" in argument


def parse_remote(argument: str, *, allow_ref: bool = True) -> RemotePath:
    """``org/repo[@ref][/path]`` (optionally after ``lamina://``) as a :class:`RemotePath`;
    :class:`LocationError` names what is missing or wrong."""
    text = argument[len(SCHEME) :] if argument.startswith(SCHEME) else argument
    org, slash, rest = text.partition("/")
    repo_part, _, path = rest.partition("/")
    repo, at, ref = repo_part.partition("@")
    if not org or not slash or not repo:
        raise LocationError(
            f"{argument!r} is not a repository path: write org/repo[@ref][/path], "
            "e.g. acme/datasets/raw/"
        )
    if at and not ref:
        raise LocationError(f"{argument!r}: '@' must be followed by a commit id")
    if at and not allow_ref:
        raise LocationError(f"{argument!r}: this command writes, so it takes no @ref")
    if path.startswith("/") or "//" in path:
        raise LocationError(f"{argument!r}: the path inside the repository has an empty segment")
    return RemotePath(org=org, repo=repo, ref=ref or None, path=path)


def parse_repository(argument: str) -> RemotePath:
    """``org/repo`` (a ``/path`` or ``@ref`` is refused)."""
    location = parse_remote(argument, allow_ref=False)
    if location.path:
        raise LocationError(f"{argument!r}: expected a repository, org/repo, without a path")
    return location
