"""URL paths of the API's nouns (one place that quotes names into path segments)."""

from __future__ import annotations

from urllib.parse import quote

from lamina._errors import InvalidArgumentError, InvalidArgumentTypeError


def segment(name: str) -> str:
    """``name`` as one path segment (slashes and other reserved characters escaped)."""
    if not isinstance(name, str):
        raise InvalidArgumentTypeError(
            "organization, repository, agent... names are str, "
            f"got {type(name).__name__} {name!r:.40}"
        )
    if not name:
        raise InvalidArgumentError("organization, repository, agent... names must not be empty")
    return quote(name, safe="")


def organization_path(org: str) -> str:
    return f"/organizations/{segment(org)}"


def repository_path(org: str, repo: str) -> str:
    return f"{organization_path(org)}/repositories/{segment(repo)}"
