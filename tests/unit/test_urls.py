"""Request URLs: the fast path builds exactly what httpx's parser builds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lamina import _urls
from lamina._urls import ApiUrls, encode_query, origin

BASE = "http://127.0.0.1:8710/api/v1"


@pytest.mark.parametrize(
    "path",
    [
        "/organizations",
        "organizations",
        "/organizations/acme/repositories/data%2Fset/object",
        "/a/b/c:d@e!$&'()*+,;=-._~",
        "/",
        "/orgs/%E2%9C%93",
    ],
)
@pytest.mark.parametrize(
    "params",
    [
        None,
        {},
        {"path": "a/b c+d.txt", "session_id": "s-1"},
        {"after": None, "amount": 100, "flag": True, "off": False},
        {"prefix": "dir/ünï/", "tags": ["x", "y&z"], "q": "a=b?c#d"},
    ],
)
def test_built_urls_equal_parsed_urls(path: str, params: dict[str, Any] | None) -> None:
    urls = ApiUrls(BASE)
    query = encode_query(params) if params else ""
    text = BASE + (path if path.startswith("/") else f"/{path}") + (f"?{query}" if query else "")
    parsed = httpx.URL(text)
    for _ in range(2):  # then built from the remembered path
        target = urls.build(path, params)
        built = target.url
        assert built == parsed
        assert target.text == str(built) == str(parsed)
        assert built.raw_path == parsed.raw_path
        assert built.params == parsed.params
        assert target.origin is urls.origin and target.origin.own


@pytest.mark.parametrize(
    "path", ["/with space", "/ünïcode", "/a?x=1", "/bad%zz", "/a#frag", "/a/../b", "/a/./b"]
)
def test_paths_that_need_parsing_take_the_parser(path: str) -> None:
    target = ApiUrls(BASE).build(path, {"n": 1})
    separator = "&" if "?" in path else "?"
    assert target.url == httpx.URL(f"{BASE}{path}{separator}n=1")
    assert target.text == str(target.url) and target.origin.own


def test_absolute_urls_keep_their_query_and_merge_params() -> None:
    urls = ApiUrls(BASE)
    built = urls.build("https://blobs.test/b/1?sig=abc&exp=9", {"part": 2})
    assert built.url == httpx.URL("https://blobs.test/b/1?sig=abc&exp=9&part=2")
    assert built.text == "https://blobs.test/b/1?sig=abc&exp=9&part=2"
    assert urls.build("https://blobs.test/b/1?sig=abc").url == httpx.URL(
        "https://blobs.test/b/1?sig=abc"
    )
    assert not built.origin.own


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8710/api/v1/blobs/upload?token=eyJrIjoiYiJ9.c2ln-_",
        "http://127.0.0.1:8710/api/v1/blobs/part?token=a.b&x=%2F:@!$'()*+,;=?/",
        "https://Blobs.Example:443/bucket/key%20one?X-Amz-Signature=ab12&X-Amz-Expires=60",
        "http://127.0.0.1:80/a",
        "http://user:pw@h.test:9/a?q",
        "http://h.test/a?",
        "http://h.test/a/../b",
        "http://h.test/a?x=[1]",
        "http://h.test/a b?x=1",
        "http://h.test/a?x=ü",
        "http://h.test/a%zz?x=%41",
        "http://h.test/a%41?x=%4",
        "http://h.test/a#fragment",
        "http://h.test",
        "http://h.test?x=1",
    ],
)
def test_absolute_urls_equal_parsed_urls(url: str) -> None:
    urls = ApiUrls(BASE)
    for _ in range(2):  # parsed, then built on the remembered origin
        target = urls.build(url)
        built = target.url
        parsed = httpx.URL(url)
        assert built == parsed
        assert target.text == str(built) == str(parsed)
        assert built.raw_path == parsed.raw_path
        assert origin(built) == origin(parsed)
        assert target.origin.own == (origin(parsed) == origin(httpx.URL(BASE)))


def test_remembered_origins_are_bounded() -> None:
    urls = ApiUrls(BASE)
    for index in range(100):
        built = urls.build(f"http://h{index}.test/x?t=1").url
        assert built == httpx.URL(f"http://h{index}.test/x?t=1")
    for index in range(2 * _urls._MAX_PATHS):
        assert urls.build(f"/p{index}").text == f"{BASE}/p{index}"
    assert len(urls._origins) <= _urls._MAX_ORIGINS
    assert len(urls._paths) <= _urls._MAX_PATHS


def test_a_redirect_location_is_joined_and_keeps_its_origin() -> None:
    urls = ApiUrls(BASE)
    own = urls.parsed(urls.build("/a/b").url.join("/api/v1/blobs/x?token=t"))
    assert own.text == "http://127.0.0.1:8710/api/v1/blobs/x?token=t" and own.origin.own
    other = urls.parsed(httpx.URL("https://blobs.test:443/k#frag"))
    assert other.text == "https://blobs.test/k#frag" and not other.origin.own
    assert other.origin.text == "https://blobs.test"


def test_encode_query_matches_httpx() -> None:
    params = {"a": "x y", "b": True, "c": [1, None, 2], "d": None, "e": 1.5}
    assert encode_query(params) == "a=x+y&b=true&c=1&c=2&e=1.5"
    assert encode_query({"path": "d/e.f~_-", "k y": "ü/+"}) == "path=d%2Fe.f~_-&k+y=%C3%BC%2F%2B"
    expected = httpx.QueryParams({"a": "x y", "b": True, "c": [1, 2], "e": 1.5})
    assert httpx.QueryParams(encode_query(params)) == expected


def test_origin_makes_default_ports_explicit() -> None:
    assert origin(httpx.URL("https://h/x")) == origin(httpx.URL("https://h:443/y"))
    assert origin(httpx.URL("http://h/x")) != origin(httpx.URL("http://h:8080/x"))
    assert origin(httpx.URL("http://h/x")) != origin(httpx.URL("https://h/x"))
