"""URL paths of the API's nouns (one place that quotes names into path segments)."""

from __future__ import annotations

from urllib.parse import quote


def segment(name: str) -> str:
    """``name`` as one path segment (slashes and other reserved characters escaped)."""
    return quote(name, safe="")


def organization_path(org: str) -> str:
    return f"/organizations/{segment(org)}"


def repository_path(org: str, repo: str) -> str:
    return f"{organization_path(org)}/repositories/{segment(repo)}"
