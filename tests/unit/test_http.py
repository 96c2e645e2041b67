"""The pure parts of sending a request: which headers, which body, which timeout, where a
redirect goes, and the reply's httpx form."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

import lamina
from lamina._http import (
    NO_API_KEY,
    USER_AGENT,
    HeaderSets,
    Prepared,
    Reply,
    is_request_idempotent,
    prepare,
    redirect,
    timeout_extension,
)
from lamina._urls import ApiUrls, Target

URLS = ApiUrls("http://127.0.0.1:8710/api/v1")
OWN = URLS.build("/organizations")
OTHER = URLS.build("http://blobs.test/b/1?token=t")
TIMEOUT = {"read": 1.0}


def test_the_api_key_goes_only_to_the_own_origin_and_only_when_asked() -> None:
    sets = HeaderSets(URLS.origin, "tuk-k", {"X-Team": "core"})
    own = dict(sets.select(OWN.origin, authenticated=True))
    assert own["authorization"] == "Bearer tuk-k"
    assert (own["Host"], own["user-agent"], own["X-Team"]) == ("127.0.0.1:8710", USER_AGENT, "core")
    same_origin_absolute = URLS.build("http://127.0.0.1:8710/x")
    assert sets.select(same_origin_absolute.origin, authenticated=True) is sets.authenticated
    anonymous = dict(sets.select(OWN.origin, authenticated=False))
    assert "authorization" not in anonymous and anonymous["Host"] == "127.0.0.1:8710"
    foreign = dict(sets.select(OTHER.origin, authenticated=True))
    assert "authorization" not in foreign and "Host" not in foreign
    assert foreign["X-Team"] == "core"


def test_a_default_host_header_is_kept() -> None:
    sets = HeaderSets(URLS.origin, "k", {"Host": "api.internal"})
    own = sets.select(OWN.origin, authenticated=True)
    assert [value for name, value in own if name.lower() == "host"] == ["api.internal"]


def test_without_a_key_an_authenticated_request_is_a_configuration_error() -> None:
    sets = HeaderSets(URLS.origin, None, None)
    assert sets.select(OTHER.origin, authenticated=True) is sets.foreign
    with pytest.raises(lamina.ConfigurationError) as caught:
        sets.select(OWN.origin, authenticated=True)
    message = str(caught.value)
    assert message == NO_API_KEY
    assert "auth login" not in message  # that command does not exist (yet)
    assert "LAMINA_API_KEY" in message and "api_key=" in message and "lamina server" in message


def test_timeout_extension() -> None:
    assert timeout_extension(5.0) == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    assert timeout_extension(None)["read"] is None
    timeout = httpx.Timeout(1.0, read=2.0)
    assert timeout_extension(timeout)["read"] == 2.0
    assert timeout_extension(timeout) is timeout_extension(timeout)  # built once
    assert timeout_extension(httpx.Timeout(1.0, read=3.0))["read"] == 3.0


def _prepared(method: str, **options: Any) -> Prepared:
    return prepare(method, OWN, [("Host", "127.0.0.1:8710")], timeout=TIMEOUT, **options)


def test_idempotency_follows_the_method_the_key_and_the_override() -> None:
    get, post = _prepared("GET"), _prepared("post")
    keyed = _prepared("POST", extra_headers={"Idempotency-Key": "k"})
    assert is_request_idempotent(get, None) and not is_request_idempotent(post, None)
    assert is_request_idempotent(keyed, None)
    assert is_request_idempotent(post, True) and not is_request_idempotent(get, False)


_HEADERS: list[list[tuple[str, str]]] = [
    [],
    [("user-agent", "lamina"), ("authorization", "Bearer k")],
    [("Host", "own.test"), ("user-agent", "lamina")],
]
_EXTRA: list[dict[str, str] | None] = [
    None,
    {"Content-Type": "text/plain"},
    {"content-length": "5"},
    {"Host": "other.test"},
    {"Transfer-Encoding": "chunked"},
    {"AUTHORIZATION": "other", "X-A": "1"},
]
_BODIES: list[dict[str, Any]] = [
    {},
    {"json": {"a": "ü", "b": [1, 2.5, None]}},
    {"json": []},
    {"content": b""},
    {"content": b"abc"},
    {"content": "tëxt"},
    {"json": {"x": 1}, "content": b"content wins"},
]


@pytest.mark.parametrize("method", ["GET", "post", "PUT", "PATCH", "DELETE", "HEAD"])
def test_prepared_requests_are_the_requests_httpx_builds(method: str) -> None:
    for headers, extra, body in itertools.product(_HEADERS, _EXTRA, _BODIES):
        prepared = prepare(method, OWN, headers, extra_headers=extra, timeout=TIMEOUT, **body)
        built = prepared.request()
        merged = httpx.Headers(headers)
        merged.update(extra or {})
        expected = httpx.Request(
            method, OWN.url, headers=merged, extensions={"timeout": TIMEOUT}, **body
        )
        case = (headers, extra, body)
        assert (built.method, built.url, built.extensions) == (
            expected.method,
            expected.url,
            expected.extensions,
        ), case
        assert built.headers.raw == expected.headers.raw, case
        assert built.content == expected.content, case
        assert not prepared.streamed


def test_a_streamed_body_is_sent_as_it_is() -> None:
    chunks = iter([b"a", b"b"])
    prepared = _prepared("PUT", content=chunks)
    assert prepared.streamed and prepared.content is chunks
    assert prepared.request().headers["transfer-encoding"] == "chunked"


def test_a_reply_builds_its_httpx_response_once() -> None:
    prepared = _prepared("GET")
    reply = Reply(
        200,
        {"content-type": "application/json"},
        [(b"Content-Type", b"application/json")],
        b"[1]",
        prepared,
    )
    response = reply.httpx_response()
    assert (response.status_code, response.json(), response.headers["content-type"]) == (
        200,
        [1],
        "application/json",
    )
    assert response.request.url == OWN.url and reply.httpx_response() is response
    assert reply.content == b"[1]" and not reply.is_redirect
    wrapped = Reply.of(httpx.Response(302, headers={"Location": "/x"}, content=b"moved"))
    assert wrapped.is_redirect and wrapped.content == b"moved"


def _redirected(method: str, status: int, **options: Any) -> Prepared:
    prepared = prepare(
        method,
        OWN,
        [("Authorization", "Bearer k"), ("Host", "127.0.0.1:8710"), ("Range", "bytes=0-1")],
        timeout=TIMEOUT,
        **options,
    )
    reply = Reply.of(httpx.Response(status, headers={"Location": OTHER.text}))
    return redirect(prepared, reply, OTHER)


def test_a_redirect_drops_the_api_key_and_host_and_keeps_the_rest() -> None:
    follow = _redirected("GET", 307)
    request = follow.request()
    assert (request.method, request.url) == ("GET", OTHER.url)
    assert "authorization" not in request.headers
    assert request.headers["host"] == "blobs.test"
    assert request.headers["range"] == "bytes=0-1"
    assert request.extensions == {"timeout": TIMEOUT}


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("POST", 303, "GET"),
        ("PUT", 303, "GET"),
        ("HEAD", 303, "HEAD"),
        ("POST", 302, "GET"),
        ("POST", 301, "GET"),
        ("PUT", 302, "PUT"),
        ("POST", 307, "POST"),
        ("POST", 308, "POST"),
    ],
)
def test_which_redirects_become_a_get_without_a_body(
    method: str, status: int, expected: str
) -> None:
    follow = _redirected(method, status, content=b"body").request()
    assert follow.method == expected
    if expected == method:
        assert follow.content == b"body"
    else:
        assert follow.content == b""
        assert "content-length" not in follow.headers


def test_targets_keep_their_origin() -> None:
    assert isinstance(OWN, Target) and OWN.origin.own and not OTHER.origin.own
    assert OTHER.text == "http://blobs.test/b/1?token=t" and OTHER.origin.netloc == "blobs.test"
