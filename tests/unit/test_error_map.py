"""The one map from domain errors to HTTP: each domain's errors get their status and code."""

from __future__ import annotations

import pytest

from lamina_server import identity, repositories, versioning
from lamina_server.api.errors import ApiError, api_error_for
from lamina_server.storage import blobs


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (versioning.SessionNotFound("s"), 404, "session_not_found"),
        (versioning.MergeConflict(["b", "a"]), 409, "merge_conflict"),
        (versioning.ConcurrentUpdate("r", 9), 409, "concurrent_update"),
        (identity.OrganizationNotFound("acme"), 404, "organization_not_found"),
        (identity.LastMember("acme"), 409, "last_member"),
        (identity.UserExists("bob"), 409, "conflict"),
        (repositories.RepositoryNotFound("acme", "r"), 404, "repository_not_found"),
        (repositories.RepositoryExists("acme", "r"), 409, "repository_exists"),
        (blobs.BlobClaimed("used"), 409, "upload_token_used"),
        (blobs.BlobMismatch("size", "size differs"), 400, "size_mismatch"),
        (blobs.BlobNotFound("gone"), 404, "upload_not_found"),
    ],
)
def test_domain_errors_map_to_one_status_and_code(error: Exception, status: int, code: str) -> None:
    mapped = api_error_for(error)
    assert (mapped.status_code, mapped.code) == (status, code)
    assert mapped.message


def test_an_api_error_maps_to_itself_and_anything_else_is_refused() -> None:
    error = ApiError(418, "teapot", "short and stout")
    assert api_error_for(error) is error
    with pytest.raises(TypeError, match="not a domain error"):
        api_error_for(KeyError("x"))
