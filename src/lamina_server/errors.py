"""The one server-side error type and the contract's JSON envelope.

Every error response is ``{"message": str, "code": str, "request_id": str}`` with the matching
HTTP status. Route code raises :class:`ApiError` (or one of the helpers below); the handlers that
turn it, validation failures and unexpected exceptions into envelopes live in ``app.py``.
"""

from __future__ import annotations

from collections.abc import Sequence


class ApiError(Exception):
    """An error with an HTTP status, a stable machine code and a human message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def unauthorized(message: str = "missing or invalid API key") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, message)


def conflict(message: str, code: str = "conflict") -> ApiError:
    return ApiError(409, code, message)


def merge_conflict(paths: Sequence[str]) -> ApiError:
    """409 for a commit whose staged paths were also changed on HEAD since the session began."""
    shown = ", ".join(paths[:50])
    more = f" (and {len(paths) - 50} more)" if len(paths) > 50 else ""
    return ApiError(
        409, "merge_conflict", f"conflicting changes on {len(paths)} path(s): {shown}{more}"
    )
