"""The pure parts of sending a request: which headers, which timeout, where a redirect goes."""

from __future__ import annotations

import httpx
import pytest

import lamina
from lamina._http import (
    NO_API_KEY,
    USER_AGENT,
    HeaderSets,
    is_request_idempotent,
    redirect_request,
    timeout_extension,
)

BASE = httpx.URL("http://127.0.0.1:8710/api/v1")
OWN = httpx.URL("http://127.0.0.1:8710/api/v1/organizations")
OTHER = httpx.URL("http://blobs.test/b/1?token=t")


def test_the_api_key_goes_only_to_the_own_origin_and_only_when_asked() -> None:
    sets = HeaderSets(BASE, "tuk-k", {"X-Team": "core"})
    own = sets.select(OWN, absolute=False, authenticated=True)
    assert own["authorization"] == "Bearer tuk-k"
    assert (own["host"], own["user-agent"], own["x-team"]) == ("127.0.0.1:8710", USER_AGENT, "core")
    same_origin_absolute = sets.select(
        httpx.URL("http://127.0.0.1:8710/x"), absolute=True, authenticated=True
    )
    assert same_origin_absolute is own
    anonymous = sets.select(OWN, absolute=False, authenticated=False)
    assert "authorization" not in anonymous and anonymous["host"] == "127.0.0.1:8710"
    foreign = sets.select(OTHER, absolute=True, authenticated=True)
    assert "authorization" not in foreign and "host" not in foreign
    assert foreign["x-team"] == "core"


def test_a_default_host_header_is_kept() -> None:
    sets = HeaderSets(BASE, "k", {"Host": "api.internal"})
    assert sets.select(OWN, absolute=False, authenticated=True).get_list("host") == ["api.internal"]


def test_without_a_key_an_authenticated_request_is_a_configuration_error() -> None:
    sets = HeaderSets(BASE, None, None)
    assert sets.select(OTHER, absolute=True, authenticated=True) is sets.foreign
    with pytest.raises(lamina.ConfigurationError) as caught:
        sets.select(OWN, absolute=False, authenticated=True)
    message = str(caught.value)
    assert message == NO_API_KEY
    assert "auth login" not in message  # that command does not exist (yet)
    assert "LAMINA_API_KEY" in message and "api_key=" in message and "lamina server" in message


def test_timeout_extension() -> None:
    assert timeout_extension(5.0) == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    assert timeout_extension(None)["read"] is None
    assert timeout_extension(httpx.Timeout(1.0, read=2.0))["read"] == 2.0


def test_idempotency_follows_the_method_the_key_and_the_override() -> None:
    get = httpx.Request("GET", OWN)
    post = httpx.Request("POST", OWN)
    keyed = httpx.Request("POST", OWN, headers={"Idempotency-Key": "k"})
    assert is_request_idempotent(get, None) and not is_request_idempotent(post, None)
    assert is_request_idempotent(keyed, None)
    assert is_request_idempotent(post, True) and not is_request_idempotent(get, False)


def _redirected(method: str, status: int, **options: object) -> httpx.Request:
    request = httpx.Request(
        method,
        OWN,
        headers={"Authorization": "Bearer k", "Host": "127.0.0.1:8710", "Range": "bytes=0-1"},
        extensions={"timeout": {"read": 1.0}},
        **options,  # type: ignore[arg-type]
    )
    response = httpx.Response(status, headers={"Location": "http://blobs.test/b/1?token=t"})
    return redirect_request(request, response)


def test_a_redirect_drops_the_api_key_and_host_and_keeps_the_rest() -> None:
    follow = _redirected("GET", 307)
    assert (follow.method, follow.url) == ("GET", OTHER)
    assert "authorization" not in follow.headers
    assert follow.headers["host"] == "blobs.test"
    assert follow.headers["range"] == "bytes=0-1"
    assert follow.extensions == {"timeout": {"read": 1.0}}


def test_a_redirect_to_a_relative_location_stays_on_the_origin() -> None:
    request = httpx.Request("GET", OWN, headers={"Authorization": "Bearer k"})
    response = httpx.Response(302, headers={"Location": "/api/v1/blobs/x?token=t"})
    follow = redirect_request(request, response)
    assert follow.url == httpx.URL("http://127.0.0.1:8710/api/v1/blobs/x?token=t")
    assert "authorization" not in follow.headers  # signed URLs carry their own credential


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
    follow = _redirected(method, status, content=b"body")
    assert follow.method == expected
    if expected == method:
        assert follow.content == b"body"
    else:
        assert follow.content == b""
        assert "content-length" not in follow.headers
