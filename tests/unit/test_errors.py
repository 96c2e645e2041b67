"""Mapping error responses to typed exceptions, and how the exceptions read."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

import lamina
from lamina import _errors
from lamina._errors import (
    RESPONSE_TEXT_LIMIT,
    APIError,
    api_error_from_response,
    error_class_for_status,
)

URL = "http://127.0.0.1:8710/api/v1/organizations/acme"


def response(
    status: int, body: Any = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = text.encode() if text is not None else json.dumps(body).encode()
    return httpx.Response(
        status, content=content, headers=headers, request=httpx.Request("GET", URL)
    )


ENVELOPE = {"message": "organization 'acme' not found", "code": "not_found", "request_id": "r1"}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, lamina.BadRequestError),
        (401, lamina.AuthenticationError),
        (403, lamina.ForbiddenError),
        (404, lamina.NotFoundError),
        (409, lamina.ConflictError),
        (410, lamina.GoneError),
        (412, lamina.PreconditionFailedError),
        (416, lamina.RangeNotSatisfiableError),
        (422, lamina.UnprocessableEntityError),
        (423, lamina.LockedError),
        (429, lamina.RateLimitError),
        (500, lamina.ServerError),
        (501, lamina.ServerError),
        (503, lamina.ServerError),
        (599, lamina.ServerError),
        (405, APIError),
        (418, APIError),
        (307, APIError),
    ],
)
def test_status_maps_to_exactly_one_class(status: int, cls: type[APIError]) -> None:
    assert error_class_for_status(status) is cls
    error = api_error_from_response(response(status, ENVELOPE))
    assert type(error) is cls
    assert isinstance(error, lamina.LaminaError)
    assert error.status_code == status


def test_envelope_fields_and_message_format() -> None:
    error = api_error_from_response(response(404, ENVELOPE))
    assert (error.message, error.code, error.request_id) == (
        "organization 'acme' not found",
        "not_found",
        "r1",
    )
    assert (error.method, error.url) == ("GET", URL)
    assert str(error) == (
        f"GET {URL} -> 404: organization 'acme' not found [code=not_found request_id=r1]"
    )


def test_message_without_code_or_request_id_has_no_suffix() -> None:
    error = APIError(500, message="boom", method="POST", url="http://x/y")
    assert str(error) == "POST http://x/y -> 500: boom"
    assert str(APIError(404, message="gone")) == "404: gone"
    assert str(APIError(404, message="m", request_id="r9")) == "404: m [request_id=r9]"


def test_request_id_falls_back_to_the_response_header() -> None:
    error = api_error_from_response(
        response(500, {"message": "oops"}, headers={"X-Request-Id": "hdr-1"})
    )
    assert error.request_id == "hdr-1"
    assert error.code is None


def test_non_json_body_gives_the_start_of_the_text() -> None:
    html = "<html>" + "x" * 1000 + "</html>"
    error = api_error_from_response(response(502, text=html))
    assert error.message == html[:200]
    assert error.response_text == html[:RESPONSE_TEXT_LIMIT]
    assert len(error.response_text) == 500


def test_json_that_is_not_an_envelope() -> None:
    assert api_error_from_response(response(400, ["a", "b"])).message == '["a", "b"]'
    assert api_error_from_response(response(400, {"message": 7})).message == '{"message": 7}'


def test_fastapi_detail_gives_the_message() -> None:
    """The ``/api/v2`` facade answers FastAPI's ``{"detail": ...}``: a text, or the list of
    validation problems."""
    refused = api_error_from_response(response(409, {"detail": "ABP 'a1' is draft"}))
    assert (type(refused), refused.message) == (lamina.ConflictError, "ABP 'a1' is draft")
    problems = [
        {"type": "missing", "loc": ["body", "payload"], "msg": "Field required", "input": {}},
        {"type": "greater_than_equal", "loc": ["body", "n"], "msg": "Input should be >= 1"},
        {"msg": "no location"},
    ]
    invalid = api_error_from_response(response(422, {"detail": problems}))
    assert isinstance(invalid, lamina.UnprocessableEntityError)
    assert invalid.message == (
        "body.payload: Field required; body.n: Input should be >= 1; no location"
    )
    denied = api_error_from_response(
        response(403, {"detail": "InvokeRun on acme/data is not allowed: no policy allows it"})
    )
    assert isinstance(denied, lamina.ForbiddenError)
    assert (denied.action, denied.resource) == ("InvokeRun", "acme/data")
    envelope_wins = api_error_from_response(response(404, {"message": "m", "detail": "d"}))
    assert envelope_wins.message == "m"
    for odd in ({"detail": 7}, {"detail": [{"loc": ["x"]}]}, {"detail": ""}):
        assert api_error_from_response(response(400, odd)).message == json.dumps(odd)


def test_empty_body_says_which_request_got_which_status() -> None:
    error = api_error_from_response(response(404, text=""))
    assert error.message == f"GET {URL} answered 404 Not Found with no error message"


def test_a_body_less_error_reads_message_and_code_from_the_headers() -> None:
    head = httpx.Response(
        404,
        headers={
            "X-Error-Code": "not_found",
            "X-Error-Message": "object %E2%80%9Cd%C3%A9j%C3%A0.txt%E2%80%9D not found",
            "X-Request-Id": "r7",
        },
        request=httpx.Request("HEAD", URL),
    )
    error = api_error_from_response(head)
    assert type(error) is lamina.NotFoundError
    assert (error.message, error.code, error.request_id) == (
        "object \u201cd\u00e9j\u00e0.txt\u201d not found",
        "not_found",
        "r7",
    )
    assert str(error).startswith(f"HEAD {URL} -> 404: object")


def test_the_envelope_wins_over_the_headers() -> None:
    both = response(409, ENVELOPE, headers={"X-Error-Code": "other", "X-Error-Message": "other"})
    error = api_error_from_response(both)
    assert (error.message, error.code) == (ENVELOPE["message"], ENVELOPE["code"])


SIGNED = "http://127.0.0.1:8710/api/v1/blobs/download?token=eyJrIjoiZCJ9.c2lnbmF0dXJl&x=1"


def test_signed_tokens_never_show_in_an_error() -> None:
    body = {"message": f"cannot serve {SIGNED}", "upload_token": "secret-upload-token"}
    ranged = httpx.Response(
        416,
        content=json.dumps(body).encode(),
        request=httpx.Request("GET", SIGNED, headers={"Range": "bytes=100-"}),
    )
    error = api_error_from_response(ranged)
    assert isinstance(error, lamina.RangeNotSatisfiableError)
    redacted = "http://127.0.0.1:8710/api/v1/blobs/download?token=[REDACTED]&x=1"
    assert error.url == redacted
    assert error.message == f"cannot serve {redacted}"
    for shown in (str(error), repr(error), error.response_text, error.message, error.url):
        assert "eyJrIjoiZCJ9" not in shown and "secret-upload-token" not in shown
    empty = httpx.Response(416, request=httpx.Request("GET", SIGNED))
    assert "eyJrIjoiZCJ9" not in str(api_error_from_response(empty))
    assert "eyJrIjoiZCJ9" not in str(APIError(416, message="m", url=SIGNED))


def test_invalid_argument_errors_are_also_the_builtin_errors() -> None:
    assert issubclass(lamina.InvalidArgumentError, ValueError)
    assert issubclass(lamina.InvalidArgumentTypeError, TypeError)
    for cls in (lamina.InvalidArgumentError, lamina.InvalidArgumentTypeError):
        assert issubclass(cls, lamina.LaminaError) and not issubclass(cls, APIError)


def test_rate_limit_error_carries_retry_after() -> None:
    error = api_error_from_response(response(429, ENVELOPE, headers={"Retry-After": "12"}))
    assert isinstance(error, lamina.RateLimitError)
    assert error.retry_after == 12.0
    dated = response(429, ENVELOPE, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert api_error_from_response(dated).retry_after == 0.0  # a date in the past
    assert api_error_from_response(response(429, ENVELOPE)).retry_after is None


def test_command_error_carries_result_and_command() -> None:
    error = lamina.CommandError("exit 2", result={"exit_code": 2}, command=["ls"])
    assert isinstance(error, lamina.SandboxError)
    assert (error.result, error.command, str(error)) == ({"exit_code": 2}, ["ls"], "exit 2")


def test_approval_timeout_error_carries_the_session_and_its_approval_page() -> None:
    error = lamina.ApprovalTimeoutError("waited", session_id="s1", web_url="http://x/approve")
    assert isinstance(error, lamina.LaminaError)
    assert not isinstance(error, lamina.APIError)
    assert (error.session_id, error.web_url, str(error)) == ("s1", "http://x/approve", "waited")


def test_run_timeout_error_carries_the_run_as_last_read() -> None:
    run = lamina.Run(
        invocation_id="r1",
        outcome="requires_approval",
        is_allowed=True,
        requires_human=True,
        withheld=True,
        run_id="r1",
        status="awaiting_approval",
        abp_id="a1",
    )
    error = lamina.RunTimeoutError("still waiting", run_id="r1", run=run)
    assert isinstance(error, lamina.LaminaError) and not isinstance(error, lamina.APIError)
    assert (error.run_id, error.run.status, str(error)) == (
        "r1",
        "awaiting_approval",
        "still waiting",
    )


def test_the_docstring_tree_matches_the_class_hierarchy() -> None:
    classes = {
        name: value
        for name, value in vars(_errors).items()
        if isinstance(value, type) and issubclass(value, lamina.LaminaError)
    }
    drawn: dict[str, str | None] = {}  # class -> parent, read from the indentation
    stack: list[tuple[int, str]] = []
    for line in (_errors.__doc__ or "").splitlines():
        match = re.match(r"[\s│├└─]*([A-Z][A-Za-z]+Error)\b", line)
        if match is None:
            continue
        column = match.start(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        drawn[match.group(1)] = stack[-1][1] if stack else None
        stack.append((column, match.group(1)))
    assert set(drawn) == set(classes)
    for name, cls in classes.items():
        parent = drawn[name]
        assert cls.__bases__[0].__name__ == (parent or "Exception"), name
        assert getattr(lamina, name) is cls


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        (
            "GetObject on acme/data is not allowed: no policy allows it",
            ("GetObject", "acme/data", "no policy allows it"),
        ),
        (
            "PutObject on acme/data/raw/a b.csv is not allowed: denied by policy 'guard'",
            ("PutObject", "acme/data/raw/a b.csv", "denied by policy 'guard'"),
        ),
        ("ManageAgents on acme is not allowed: x: y", ("ManageAgents", "acme", "x: y")),
        ("CreateOrganization on * is not allowed", ("CreateOrganization", "*", None)),
        ("this URL's token expired", (None, None, None)),
        ("", (None, None, None)),
        ("on acme is not allowed: x", (None, None, None)),
    ],
)
def test_forbidden_errors_carry_the_denied_action_and_resource(
    message: str, parsed: tuple[str | None, str | None, str | None]
) -> None:
    error = api_error_from_response(response(403, {"message": message, "code": "forbidden"}))
    assert isinstance(error, lamina.ForbiddenError)
    assert (error.action, error.resource, error.reason) == parsed
    assert _errors.parse_denial(message) == parsed


def test_a_forbidden_error_without_an_envelope_has_no_action() -> None:
    error = api_error_from_response(response(403, text="nope"))
    assert isinstance(error, lamina.ForbiddenError)
    assert (error.action, error.resource, error.reason) == (None, None, None)
