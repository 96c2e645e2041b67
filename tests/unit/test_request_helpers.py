"""The fast lane reads requests straight from the ASGI scope; these helpers must agree with
Starlette's own readings, which the other routes use."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.requests import Request

from lamina_server.api import deps
from lamina_server.api.deps import query, request_base


def _request(
    query_string: bytes = b"",
    host: bytes | None = b"example.test:8080",
    scheme: str = "http",
    server: tuple[str, int] = ("10.0.0.1", 9000),
    **extra: Any,
) -> Request:
    headers = [] if host is None else [(b"host", host)]
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": scheme,
        "path": "/x",
        "root_path": "",
        "query_string": query_string,
        "headers": headers,
        "server": server,
        **extra,
    }
    return Request(scope)


_QUERY_TEXT = st.text(alphabet="ab=&%+2F/é;x0", max_size=30)


@given(_QUERY_TEXT)
def test_query_reads_what_starlette_reads(text: str) -> None:
    raw = text.encode("utf-8")
    assert query(_request(raw)) == dict(QueryParams(raw.decode("latin-1")))


def test_query_keeps_the_last_of_a_repeated_name_and_blank_values() -> None:
    params = query(_request(b"path=a%2Fb+c&session_id=s1&session_id=s2&flag&empty="))
    assert params == {"path": "a/b c", "session_id": "s2", "flag": "", "empty": ""}


def test_request_base_is_starlettes_base_url_per_host() -> None:
    cases = [
        _request(host=b"example.test:8080"),
        _request(host=b"other.test", scheme="https"),
        _request(host=None, server=("10.0.0.2", 80)),
        _request(host=b"bad host\r\nx: y"),  # an invalid Host falls back to the server address
        _request(host=b"example.test:8080", root_path="/prefix"),
    ]
    for request in cases:
        expected = str(Request(request.scope).base_url).rstrip("/")
        assert request_base(request) == expected
        assert request_base(request) == expected  # and again, remembered


def test_request_base_remembers_only_a_few_hosts() -> None:
    for index in range(deps._MAX_BASES * 2):
        host = f"host-{index}.test".encode()
        assert request_base(_request(host=host)) == f"http://host-{index}.test"
    assert len(deps._BASES) <= deps._MAX_BASES
