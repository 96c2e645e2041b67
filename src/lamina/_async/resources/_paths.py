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


#: The header that names the organization a request to the ``/api/v2`` facade acts in.
ORGANIZATION_HEADER = "X-Lamina-Organization"


def facade_url(endpoint_url: str, path: str) -> str:
    """The absolute URL of ``path`` (``"/abps"``) under the ``/api/v2`` facade."""
    return f"{endpoint_url}/api/v2{path}"


def facade_headers(org: str) -> dict[str, str]:
    """The headers that make a Lamina API key act in the organization ``org`` on the facade."""
    return {ORGANIZATION_HEADER: org}
