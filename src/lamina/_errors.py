"""Exceptions raised by the Lamina SDK. Every public call raises only these:

    LaminaError
    ├── ConfigurationError          no API key, bad configuration
    ├── InvalidArgumentError        an argument has a bad value (also a ValueError)
    ├── InvalidArgumentTypeError    an argument has the wrong type (also a TypeError)
    ├── TransportError              the request did not complete (connect, read, timeout)
    ├── SerializationError          the response is not the JSON the API promises
    ├── ApprovalTimeoutError        a commit waited longer than its timeout for approval
    ├── ApprovalRejectedError       a commit held for approval was rejected or withdrawn
    ├── RunTimeoutError             a governed run did not end within its wait's timeout
    ├── ImportTimeoutError          an import job did not end within its wait's timeout
    ├── PolicySyntaxError           a policy text the SDK's evaluator cannot read (also a ValueError)
    ├── SandboxError                a sandbox failed, was cancelled or timed out
    │   └── CommandError            a command exited non-zero
    └── APIError                    the server answered with an error status
        ├── BadRequestError              400
        ├── AuthenticationError          401
        ├── ForbiddenError               403  (action, resource, reason)
        ├── NotFoundError                404
        ├── ConflictError                409
        ├── GoneError                    410
        ├── PreconditionFailedError      412
        ├── RangeNotSatisfiableError     416  (a byte_range past the end of the object)
        ├── UnprocessableEntityError     422
        ├── LockedError                  423
        ├── RateLimitError               429  (retry_after)
        └── ServerError                  5xx

Other statuses (e.g. 405, 418, an unfollowed 3xx) raise a plain :class:`APIError`.

Messages never show a credential: the tokens of signed URLs are redacted
(:func:`lamina._redact.redact`) from an error's message, URL and response text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

import httpx

from lamina._redact import redact
from lamina._retry import parse_retry_after

if TYPE_CHECKING:
    from lamina.models.governance import PrincipalRef
    from lamina.models.imports import ImportJobData
    from lamina.models.runs import Run

__all__ = [
    "APIError",
    "ApprovalRejectedError",
    "ApprovalTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CommandError",
    "ConfigurationError",
    "ConflictError",
    "FailedPut",
    "ForbiddenError",
    "GoneError",
    "ImportTimeoutError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LaminaError",
    "LockedError",
    "NotFoundError",
    "PolicySyntaxError",
    "PreconditionFailedError",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "RunTimeoutError",
    "SandboxError",
    "SerializationError",
    "ServerError",
    "TransportError",
    "UnprocessableEntityError",
]

#: ``APIError.response_text`` keeps at most this many characters of the body.
RESPONSE_TEXT_LIMIT = 500
#: A body that is not the JSON error envelope gives a message of at most this many characters.
_MESSAGE_LIMIT = 200


class LaminaError(Exception):
    """Root of every error the SDK raises."""


class ConfigurationError(LaminaError):
    """The client is not configured to make the request (e.g. no API key was found)."""


class InvalidArgumentError(LaminaError, ValueError):
    """An argument has a value the call cannot take (e.g. ``part_size=0``, a repository
    path without ``/``). Also a ``ValueError``; the message says what to pass."""


class InvalidArgumentTypeError(LaminaError, TypeError):
    """An argument has a type the call cannot take (e.g. ``put(path, "text")``). Also a
    ``TypeError``; the message says what to pass."""


class TransportError(LaminaError):
    """The request did not complete: connection refused or reset, timeout, protocol error.

    The underlying ``httpx``/``aiohttp`` exception is the ``__cause__``.
    """


class SerializationError(LaminaError):
    """A response body is not what the API promises: not JSON, a missing field, a wrong type."""


class ApprovalTimeoutError(LaminaError):
    """``commit(block_for_approval=True, timeout=...)`` waited longer than ``timeout`` for a
    human to approve the session; ``web_url`` is where it can still be approved."""

    def __init__(self, message: str, *, session_id: str, web_url: str) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.web_url = web_url


class ApprovalRejectedError(LaminaError):
    """``commit(block_for_approval=True)`` waited for a decision and the session was not
    approved: ``state`` is ``rejected`` (by ``decided_by``, a :class:`~lamina.PrincipalRef`,
    for ``reason``) or ``withdrawn`` (rolled back by its requester); nothing landed."""

    def __init__(
        self,
        message: str,
        *,
        session_id: str,
        state: str,
        reason: str = "",
        decided_by: PrincipalRef | None = None,
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.state = state
        self.reason = reason
        self.decided_by = decided_by


class RunTimeoutError(LaminaError):
    """``org.runs.wait(run_id, timeout=...)`` waited longer than ``timeout`` for a governed run
    to end (``succeeded``, ``failed`` or ``blocked``); ``run`` is the :class:`~lamina.Run` as
    last read (e.g. ``awaiting_approval``, its ``output.web_url`` where it can be approved).
    The run is left as it is."""

    def __init__(self, message: str, *, run_id: str, run: Run) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.run = run


class ImportTimeoutError(LaminaError):
    """``job.wait(timeout=...)`` waited longer than ``timeout`` for an import job to end;
    ``job`` is the :class:`~lamina.ImportJobData` as last read. The job runs on."""

    def __init__(self, message: str, *, job: ImportJobData) -> None:
        super().__init__(message)
        self.job = job


class PolicySyntaxError(LaminaError, ValueError):
    """A policy text that :func:`lamina.can_i` cannot evaluate: ``policy`` (its name, when
    known), ``line`` and ``column`` (from 1) say where, ``detail`` says what."""

    def __init__(self, detail: str, *, line: int, column: int, policy: str | None = None) -> None:
        where = f"policy {policy!r}, " if policy is not None else ""
        super().__init__(f"{where}line {line}, column {column}: {detail}")
        self.detail = detail
        self.line = line
        self.column = column
        self.policy = policy


class SandboxError(LaminaError):
    """A sandbox failed, was stopped, or did not finish in time.

    ``status`` is the sandbox's :class:`~lamina.SandboxStatus` when the error comes from it
    (e.g. ``failed/image_not_found`` and its ``error_message``), else ``None``.
    """

    def __init__(self, message: str, *, status: Any = None) -> None:
        super().__init__(message)
        self.status = status


class CommandError(SandboxError):
    """A command in a sandbox exited with a non-zero status.

    ``result`` is the command's result (exit code and output); ``command`` what was run.
    """

    def __init__(
        self, message: str, *, result: Any = None, command: Any = None, status: Any = None
    ) -> None:
        super().__init__(message, status=status)
        self.result = result
        self.command = command


class FailedPut(NamedTuple):
    """An object a batched upload refused: its path, and the status, code and message its
    one-object upload would have answered."""

    path: str
    status_code: int
    code: str
    message: str


class APIError(LaminaError):
    """The server answered with an error status.

    ``message``, ``code`` and ``request_id`` come from the error envelope the API returns
    (``request_id`` falls back to the ``X-Request-Id`` header); ``response_text`` is the start
    of the raw body. The tokens of signed URLs are redacted from ``message``, ``url`` and
    ``response_text``. ``failures``: the objects a batched upload refused (``put_many``,
    ``upload_dir``), each a :class:`FailedPut`; empty for any other error.
    """

    failures: tuple[FailedPut, ...] = ()

    def __init__(
        self,
        status_code: int,
        *,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
        method: str = "",
        url: str = "",
        response_text: str = "",
    ) -> None:
        self.status_code = status_code
        self.message = redact(message)
        self.code = code
        self.request_id = request_id
        self.method = method
        self.url = redact(url)
        self.response_text = redact(response_text[:RESPONSE_TEXT_LIMIT])
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.url} -> " if self.method or self.url else ""
        text = f"{where}{self.status_code}: {self.message}"
        tags = [
            f"{name}={value}"
            for name, value in (("code", self.code), ("request_id", self.request_id))
            if value
        ]
        return f"{text} [{' '.join(tags)}]" if tags else text


class BadRequestError(APIError):
    """400: the request is malformed or a field is invalid (the message names it)."""


class AuthenticationError(APIError):
    """401: no API key, or the key is unknown, revoked or expired."""


class ForbiddenError(APIError):
    """403: the caller's policies do not allow the action.

    ``action`` (``"GetObject"``), ``resource`` (``"acme/data"``, ``"acme/data/raw/a.csv"``)
    and ``reason`` are read from the server's message, ``"<Action> on <resource> is not
    allowed: <reason>"``; each is ``None`` when the message does not say it.
    """

    def __init__(self, status_code: int, **kw: Any) -> None:
        super().__init__(status_code, **kw)
        self.action, self.resource, self.reason = parse_denial(self.message)


_DENIAL = re.compile(
    r"\s*(?P<action>[A-Za-z][A-Za-z0-9_]*) on (?P<resource>\S(?:.*?\S)?) is not allowed"
    r"(?:\s*:\s*(?P<reason>.*\S))?\s*",
    re.DOTALL,
)


def parse_denial(message: str) -> tuple[str | None, str | None, str | None]:
    """``(action, resource, reason)`` from a 403 message in the server's format
    ``"<Action> on <resource> is not allowed: <reason>"``; ``(None, None, None)`` for any
    other message, and ``reason`` ``None`` when the message has none."""
    match = _DENIAL.fullmatch(message)
    if match is None:
        return None, None, None
    return match["action"], match["resource"], match["reason"]


class NotFoundError(APIError):
    """404: the resource does not exist (or the caller may not know that it does)."""


class ConflictError(APIError):
    """409: the request conflicts with the current state (e.g. a merge conflict at commit)."""


class GoneError(APIError):
    """410: the resource existed but is gone (e.g. a finished sandbox)."""


class PreconditionFailedError(APIError):
    """412: a precondition (``If-Match``, expected ETag) did not hold."""


class RangeNotSatisfiableError(APIError):
    """416: the requested byte range starts past the end of the object."""


class UnprocessableEntityError(APIError):
    """422: the request is well-formed but cannot be processed."""


class LockedError(APIError):
    """423: the resource is locked (e.g. a session awaiting approval)."""


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds, if it sent one."""

    def __init__(self, status_code: int, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(status_code, **kw)


class ServerError(APIError):
    """5xx: the server failed; the request may be retried."""


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    412: PreconditionFailedError,
    416: RangeNotSatisfiableError,
    422: UnprocessableEntityError,
    423: LockedError,
    429: RateLimitError,
}


def error_class_for_status(status_code: int) -> type[APIError]:
    """The one status -> class map: any 5xx is a :class:`ServerError`."""
    if status_code >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status_code, APIError)


def api_error_from_response(response: httpx.Response) -> APIError:
    """The typed error for a read error response (its ``request`` names the method and URL).

    The message and code come from the JSON envelope; a body in FastAPI's shape (the
    ``/api/v2`` facade's) gives the message from its ``detail`` (a text, or the list of
    validation problems, each as ``loc: msg``); a response without either (a HEAD has no
    body) gives them in the ``X-Error-Message`` (percent-encoded UTF-8) and ``X-Error-Code``
    headers; failing all, the message is the start of the body, or says which request got
    which status.
    """
    content = response.content
    text = content.decode("utf-8", "replace")
    envelope = _json_object(content)
    request = response.request
    message = envelope.get("message")
    if not isinstance(message, str) or not message:
        message = _detail_message(envelope.get("detail"))
    if not message:
        header = response.headers.get("x-error-message")
        message = unquote(header) if header else text[:_MESSAGE_LIMIT]
    if not message:
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        message = (
            f"{request.method} {request.url} answered {response.status_code}{reason} "
            "with no error message"
        )
    code = envelope.get("code")
    if not isinstance(code, str) or not code:
        code = response.headers.get("x-error-code")
    request_id = envelope.get("request_id") or response.headers.get("x-request-id")
    fields: dict[str, Any] = {
        "message": message,
        "code": code or None,
        "request_id": request_id if isinstance(request_id, str) else None,
        "method": request.method,
        "url": str(request.url),
        "response_text": text[:RESPONSE_TEXT_LIMIT],
    }
    status = response.status_code
    cls = error_class_for_status(status)
    if cls is RateLimitError:
        fields["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
    error = cls(status, **fields)
    failed = envelope.get("failed")
    if isinstance(failed, list):
        error.failures = tuple(_failures(failed))
    return error


def _failures(failed: list[Any]) -> Iterator[FailedPut]:
    """The ``failed`` list of a batched upload's error envelope; malformed entries skipped."""
    for item in failed:
        if not isinstance(item, dict):
            continue
        path, status, code, message = (
            item.get(key) for key in ("path", "status", "code", "message")
        )
        if isinstance(path, str) and isinstance(status, int) and isinstance(code, str):
            yield FailedPut(path, status, code, redact(message) if isinstance(message, str) else "")


def _detail_message(detail: Any) -> str:
    """The message of FastAPI's ``{"detail": ...}``: the text, or each validation problem as
    ``loc: msg`` (``body.payload: Field required``), joined by ``; ``; ``""`` for anything
    else."""
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return ""
    problems: list[str] = []
    for problem in detail:
        if not isinstance(problem, dict) or not isinstance(problem.get("msg"), str):
            return ""
        loc = problem.get("loc")
        where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
        problems.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(problems)


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
