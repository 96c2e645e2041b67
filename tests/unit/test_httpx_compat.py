"""The private httpx pieces behind :mod:`lamina._httpx_compat`: each gives exactly what
httpx's public API gives, and a piece that stops doing so fails the import loudly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lamina import _httpx_compat
from lamina._config import tomllib
from lamina._httpx_compat import (
    HttpxCompatibilityError,
    build_request,
    read_response,
    replace_url,
)


def test_every_self_check_holds_with_the_installed_httpx() -> None:
    _httpx_compat.check()
    assert all(holds() for holds in _httpx_compat._CHECKS.values())


def test_a_failing_check_names_the_piece_and_the_supported_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone() -> bool:
        raise AttributeError("'URL' object has no attribute '_uri_reference'")

    monkeypatch.setitem(_httpx_compat._CHECKS, "replace_url (httpx.URL._uri_reference)", gone)
    with pytest.raises(HttpxCompatibilityError) as caught:
        _httpx_compat.check()
    message = str(caught.value)
    assert "replace_url" in message and "_uri_reference" in message
    assert httpx.__version__ in message and _httpx_compat.SUPPORTED in message
    assert isinstance(caught.value, ImportError)

    monkeypatch.setitem(_httpx_compat._CHECKS, "replace_url (httpx.URL._uri_reference)", bool)
    with pytest.raises(HttpxCompatibilityError, match="no longer gives what"):
        _httpx_compat.check()


def test_the_pin_in_pyproject_is_the_supported_range() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert _httpx_compat.SUPPORTED in dependencies


def test_replaced_urls_equal_parsed_urls() -> None:
    base = httpx.URL("https://blobs.test:9000/a")
    built = replace_url(base, "/b/c%20d", "x=1&token=t.s")
    parsed = httpx.URL("https://blobs.test:9000/b/c%20d?x=1&token=t.s")
    assert (built, str(built), built.raw_path) == (parsed, str(parsed), parsed.raw_path)


def test_stored_bodies_read_as_httpx_reads_them() -> None:
    request = httpx.Request("GET", "http://h.test/x")
    stored = read_response(200, [(b"Content-Type", b"application/json")], b"[1]", request, True)
    assert (stored.json(), stored.num_bytes_downloaded, stored.is_closed) == ([1], 3, True)
    assert stored.request is request


_URL = httpx.URL("http://127.0.0.1:8710/api/v1/x?a=1")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("user-agent", "lamina"), ("authorization", "Bearer k")],
        [("Host", "own.test"), ("Content-Type", "text/plain")],
        [("Transfer-Encoding", "chunked")],
    ],
)
@pytest.mark.parametrize("content", [None, b"", b"abc"])
def test_built_requests_are_the_requests_httpx_builds(
    method: str, headers: list[tuple[str, str]], content: bytes | None
) -> None:
    sized = [*headers, ("Content-Length", str(len(content)))] if content else headers
    built = build_request(method, _URL, sized, content, {"t": 1})
    expected = httpx.Request(method, _URL, headers=sized, content=content, extensions={"t": 1})
    assert (built.method, built.url, built.extensions) == (
        expected.method,
        expected.url,
        expected.extensions,
    )
    assert built.headers.raw == expected.headers.raw
    assert built.content == expected.content


def test_a_streamed_body_is_left_to_httpx() -> None:
    built = build_request("PUT", _URL, [], iter([b"a", b"b"]))
    assert built.headers["transfer-encoding"] == "chunked"
    assert b"".join(built.stream) == b"ab"  # type: ignore[union-attr]
