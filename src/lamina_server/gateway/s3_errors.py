"""Errors as S3 answers them: an HTTP status, an S3 code (``NoSuchKey``, ``AccessDenied``…)
and a message, written as an S3 error document by :mod:`.s3_xml`.

:func:`s3_error_for` turns what the API would have answered — its :class:`ApiError` and the
domains' errors, through the API's one map (:func:`~lamina_server.api.errors.api_error_for`) —
into the S3 error a client expects.
"""

from __future__ import annotations

from lamina_server import versioning
from lamina_server.api.errors import ApiError, api_error_for
from lamina_server.storage import blobs


class S3Error(Exception):
    """An error as S3 clients expect it: ``status``, ``code`` (``NoSuchKey``…), message and
    extra response headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def access_denied(message: str) -> S3Error:
    return S3Error(403, "AccessDenied", message)


def invalid_argument(message: str) -> S3Error:
    return S3Error(400, "InvalidArgument", message)


def invalid_request(message: str) -> S3Error:
    return S3Error(400, "InvalidRequest", message)


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error(404, "NoSuchBucket", f"the bucket {bucket!r} does not exist")


def no_such_key(key: str) -> S3Error:
    return S3Error(404, "NoSuchKey", f"the key {key!r} does not exist")


def no_such_upload(message: str) -> S3Error:
    return S3Error(404, "NoSuchUpload", message)


def read_only(key: str) -> S3Error:
    return S3Error(
        405,
        "MethodNotAllowed",
        f"{key!r} is read-only: objects at 'head' or at a commit never change; write into an "
        "open session, as 'session-<id>/<path>', and commit it through the API",
    )


# (domain error, status, S3 code): the first class an error is an instance of decides.
_DOMAIN: tuple[tuple[type[Exception], int, str], ...] = (
    (versioning.ObjectNotFound, 404, "NoSuchKey"),
    (versioning.RefNotFound, 404, "NoSuchKey"),
    (versioning.SessionNotFound, 404, "NoSuchSession"),
    (versioning.SessionClosed, 409, "SessionClosed"),
    (versioning.InvalidCursor, 400, "InvalidArgument"),
    (blobs.PartMismatch, 400, "InvalidPart"),
    (blobs.BlobMismatch, 400, "BadDigest"),
    (blobs.BlobNotFound, 404, "NoSuchUpload"),
    (blobs.BlobClaimed, 404, "NoSuchUpload"),
)
# The API's codes that S3 names otherwise; any other status keeps a generic code.
_API_CODES = {
    "organization_not_found": (404, "NoSuchBucket"),
    "repository_not_found": (404, "NoSuchBucket"),
    "invalid_path": (400, "InvalidArgument"),
    "bad_request": (400, "InvalidArgument"),
    "invalid_range": (400, "InvalidArgument"),
}
_STATUS_CODES = {
    400: "InvalidRequest",
    401: "AccessDenied",
    403: "AccessDenied",
    404: "NoSuchKey",
    409: "OperationAborted",
    413: "EntityTooLarge",
    416: "InvalidRange",
}


def s3_error_for(exc: Exception) -> S3Error:
    """The S3 error of an exception the API would have answered (its one map, then S3's
    names); :class:`TypeError` for anything else."""
    if isinstance(exc, S3Error):
        return exc
    for kind, status, code in _DOMAIN:
        if isinstance(exc, kind):
            return S3Error(status, code, str(exc))
    error: ApiError = api_error_for(exc)
    status, code = _API_CODES.get(
        error.code, (error.status_code, _STATUS_CODES.get(error.status_code, "InternalError"))
    )
    return S3Error(status, code, error.message, headers=error.headers)
