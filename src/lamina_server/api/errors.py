"""Errors as responses: the contract's envelope, and the one map from domain errors to HTTP.

Every error response is ``{"message": str, "code": str, "request_id": str}`` with the matching
status. It also carries ``X-Error-Code`` and ``X-Error-Message`` (percent-encoded UTF-8), so an
error answering ``HEAD``, which has no body, still says what went wrong.

Domains raise their own errors (:mod:`lamina_server.versioning.errors`,
:mod:`lamina_server.identity.errors`, :mod:`lamina_server.repositories.errors`,
:mod:`lamina_server.secrets.errors`, :mod:`lamina_server.imports.errors`, the sandbox triggers' ``TriggerError``, the blob store's
``BlobError``); :func:`api_error_for` is the only place that turns them into HTTP. Route code raises :class:`ApiError` (or one of the helpers)
for what only the HTTP layer knows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from lamina_server import identity, imports, repositories, secrets, versioning
from lamina_server.authz import errors as access
from lamina_server.gateway import errors as gateway
from lamina_server.governance import errors as governance
from lamina_server.sandboxes import errors as sandboxes
from lamina_server.sandboxes import triggers
from lamina_server.storage import blobs

logger = logging.getLogger("lamina_server")


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


# What api_error_for maps: ApiError, each domain's root, and a value the database refused
# (sqlalchemy's DataError); the app handles each of them.
HANDLED_ERRORS: tuple[type[Exception], ...] = (
    ApiError,
    versioning.VersioningError,
    identity.IdentityError,
    access.AccessControlError,
    repositories.RepositoryError,
    secrets.SecretsError,
    imports.ImportsError,
    triggers.TriggerError,
    blobs.BlobError,
    sandboxes.SandboxError,
    governance.GovernanceError,
    gateway.GatewayError,
    DataError,
)


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


# --- the domain map ---------------------------------------------------------------------------

# (error class, status, code); the first class an error is an instance of decides.
_DOMAIN_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (versioning.MergeConflict, 409, "merge_conflict"),  # its message lists the paths
    (versioning.SessionNotFound, 404, "session_not_found"),
    (versioning.ObjectNotFound, 404, "object_not_found"),
    (versioning.RefNotFound, 404, "commit_not_found"),
    (versioning.SessionClosed, 400, "session_closed"),
    (versioning.RevertNotSupported, 400, "revert_not_supported"),
    (versioning.InvalidCursor, 400, "invalid_cursor"),
    (versioning.ConcurrentUpdate, 409, "concurrent_update"),
    (versioning.VersioningError, 409, "conflict"),
    (identity.OrganizationNotFound, 404, "organization_not_found"),
    (identity.UserNotFound, 404, "user_not_found"),
    (identity.NotAMember, 404, "not_found"),
    (identity.OrganizationExists, 409, "organization_exists"),
    (identity.LastMember, 409, "last_member"),
    (identity.LastAdmin, 409, "last_admin"),
    (identity.AgentNotFound, 404, "agent_not_found"),
    (identity.RoleNotFound, 404, "role_not_found"),
    (identity.AgentExists, 409, "agent_exists"),
    (identity.RoleExists, 409, "role_exists"),
    (identity.KeyNotFound, 404, "key_not_found"),
    (identity.InvitationNotFound, 404, "invitation_not_found"),
    (identity.InvitationExists, 409, "invitation_exists"),
    (identity.InvitationGone, 410, "invitation_gone"),
    (identity.InvitationNotPending, 409, "invitation_not_pending"),
    (identity.IdentityError, 409, "conflict"),
    (access.GroupNotFound, 404, "group_not_found"),
    (access.PolicyNotFound, 404, "policy_not_found"),
    (access.SubjectNotFound, 404, "principal_not_found"),
    (access.NotInGroup, 404, "not_found"),
    (access.NotAttached, 404, "not_found"),
    (access.GroupExists, 409, "group_exists"),
    (access.PolicyExists, 409, "policy_exists"),
    (access.GroupCycle, 409, "group_cycle"),
    (access.BuiltinPolicy, 400, "builtin_policy"),
    (access.AccessControlError, 409, "conflict"),
    (repositories.RepositoryNotFound, 404, "repository_not_found"),
    (repositories.RepositoryExists, 409, "repository_exists"),
    (repositories.RepositoryError, 409, "conflict"),
    (secrets.SecretNotFound, 404, "secret_not_found"),
    (secrets.InvalidSecretKey, 400, "invalid_secret_key"),
    (secrets.InvalidSecretValue, 400, "invalid_secret_value"),
    # Server-side corruption (an altered row, a changed key), logged where it is found.
    (secrets.SecretUnreadable, 500, "secret_unreadable"),
    (secrets.SecretsError, 409, "conflict"),
    (imports.ConnectorNotFound, 404, "connector_not_found"),
    (imports.ConnectorNotAttached, 404, "connector_not_attached"),
    (imports.ConnectorGone, 410, "connector_deleted"),
    (imports.ConnectorDisabled, 423, "connector_disabled"),
    (imports.ConnectorInvalid, 400, "invalid_connector"),
    (imports.ConnectionFailed, 502, "connection_failed"),
    (imports.ImportInvalid, 400, "invalid_import"),
    (imports.ImportNotFound, 404, "import_not_found"),
    (imports.ImportsError, 409, "conflict"),
    (governance.ApprovalNotFound, 404, "approval_not_found"),
    (governance.ApprovalDecided, 409, "approval_decided"),
    (governance.SelfApproval, 403, "self_approval"),
    (governance.GovernanceError, 409, "conflict"),
    (sandboxes.SandboxNotFound, 404, "sandbox_not_found"),
    (sandboxes.SandboxFinished, 410, "sandbox_finished"),
    (sandboxes.SandboxNotReady, 503, "sandbox_not_ready"),
    (sandboxes.WrongMode, 400, "wrong_mode"),
    (sandboxes.SandboxError, 409, "conflict"),
    (triggers.TriggerInvalid, 400, "bad_request"),
    (triggers.TriggerNotFound, 404, "trigger_not_found"),
    (triggers.TriggerExists, 409, "trigger_exists"),
    (triggers.TriggerError, 409, "conflict"),
    (gateway.CredentialNotFound, 404, "s3_credential_not_found"),
    (gateway.GatewayError, 409, "conflict"),
    (blobs.BlobExists, 409, "blob_exists"),
    (blobs.BlobNotFound, 404, "upload_not_found"),
    (blobs.PartMismatch, 400, "invalid_part"),
    (blobs.BlobError, 400, "bad_request"),
)


def api_error_for(exc: Exception) -> ApiError:
    """The one mapping from domain errors to HTTP; every route relies on it."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, blobs.BlobMismatch):
        return bad_request(str(exc), f"{exc.field}_mismatch")
    if isinstance(exc, blobs.BlobClaimed):
        return conflict(f"upload token already used: {exc}", "upload_token_used")
    if isinstance(exc, DataError):
        # What the request carried and the database refused to hold (PostgreSQL's text holds
        # no NUL character); its transaction was rolled back.
        return bad_request("the request holds a value the database cannot store (a NUL character?)")
    for kind, status, code in _DOMAIN_STATUS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc))
    raise TypeError(f"{type(exc).__name__} is not a domain error") from exc


# --- envelopes --------------------------------------------------------------------------------


def envelope(code: str, message: str, request_id: str) -> dict[str, str]:
    """The contract's error body."""
    return {"message": message, "code": code, "request_id": request_id}


def error_headers(code: str, message: str) -> dict[str, str]:
    """The headers that say what went wrong where a response has no body (``HEAD``)."""
    return {
        "X-Error-Code": code,
        "X-Error-Message": quote(message, safe=" /:,'\"()[]{}=<>@*+!?-_.~"),
    }


def error_response(
    status_code: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        envelope(code, message, request_id),
        status_code=status_code,
        headers={**(headers or {}), **error_headers(code, message)},
    )


def request_id_of(request: Request) -> str:
    request_id: str = getattr(request.state, "request_id", "")
    return request_id


def envelope_for(exc: Exception, request_id: str) -> JSONResponse:
    """The envelope of an :class:`ApiError` or a domain error."""
    error = api_error_for(exc)
    return error_response(error.status_code, error.code, error.message, request_id, error.headers)


def log_unhandled(scope: Scope, request_id: str) -> None:
    """Logs the exception being handled, with its request."""
    logger.exception(
        "unhandled error in %s %s (request id %s)",
        scope.get("method"),
        scope.get("path"),
        request_id,
    )


def log_disconnect(scope: Scope, request_id: str) -> None:
    """A client that went away before its request was read: nothing failed here."""
    logger.info(
        "client disconnected during %s %s (request id %s)",
        scope.get("method"),
        scope.get("path"),
        request_id,
    )


def internal_error(request_id: str) -> JSONResponse:
    """The last-resort 500 envelope: what went wrong stays in the log."""
    return error_response(500, "internal_error", "internal server error", request_id)


# --- request validation -----------------------------------------------------------------------

_SOURCES = ("body", "query", "path", "header", "cookie")


def describe_validation_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``"<field>: <problem>"`` in the field names clients send."""
    loc = [str(part) for part in error.get("loc", ())]
    source = loc[0] if loc else ""
    field = ".".join(loc[1:] if source in _SOURCES else loc)
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in ("json_invalid", "recursion_loop"):
        return "request body is not valid JSON"
    if source == "body" and not field:
        if kind == "missing":
            return "request body is required"
        return "request body must be a JSON object sent as application/json"
    if kind == "missing":
        problem = "is required"
    elif kind == "string_pattern_mismatch":
        problem = f"must match {ctx.get('pattern')}"
    else:
        problem = str(error.get("msg", "is invalid"))
        problem = problem.removeprefix("Value error, ")
        problem = problem[:1].lower() + problem[1:]
    return f"{field}: {problem}" if field else problem


def validation_failed(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    problems = [describe_validation_error(error) for error in errors]
    return bad_request("; ".join(dict.fromkeys(problems[:5])) or "invalid request")


def body_validation_failed(exc: ValidationError) -> ApiError:
    """A body model's :class:`ValidationError`, with locations as FastAPI reports them."""
    return validation_failed(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    )


# --- handlers ---------------------------------------------------------------------------------

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    return envelope_for(exc, request_id_of(request))


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return envelope_for(validation_failed(exc.errors()), request_id_of(request))


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 400:
        # FastAPI's only 400: a body it could not parse (malformed, or nested too deep).
        message = "request body is not valid JSON"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, message, request_id_of(request), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette reports only the first route's)."""
    routes: list[BaseRoute] = request.app.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
