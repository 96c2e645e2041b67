"""The client core against the real reference server: the escape hatch, errors with request
ids, configuration, pagination over a real list route, headers on the wire, closing."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen

import lamina
from lamina import AsyncClient
from lamina._concurrency import agather_bounded
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio


@frozen
class Repo:
    id: str
    name: str


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory (no config file) and no LAMINA_* variables."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LAMINA_API_KEY", raising=False)
    monkeypatch.delenv("LAMINA_ENDPOINT_URL", raising=False)
    return tmp_path


def client_for(server: LocalServer, **options: Any) -> AsyncClient:
    return AsyncClient(api_key=server.api_key, endpoint_url=server.endpoint_url, **options)


async def test_escape_hatch_get_and_request_json(local_server: LocalServer) -> None:
    async with client_for(local_server) as client:
        response = await client.get("/organizations")
        assert response.status_code == 200
        names = [org["name"] for org in response.json()["results"]]
        assert local_server.org in names
        data = await client.request_json("GET", f"/organizations/{local_server.org}")
        assert data["name"] == local_server.org


async def test_escape_hatch_post_creates_and_delete_removes(
    local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    name = unique_name("core")
    async with client_for(local_server) as client:
        created = await client.post(
            f"/organizations/{local_server.org}/repositories", json={"name": name}
        )
        assert created.status_code in (200, 201)
        assert created.json()["name"] == name
        await client.delete(f"/organizations/{local_server.org}/repositories/{name}")
        with pytest.raises(lamina.NotFoundError):
            await client.get(f"/organizations/{local_server.org}/repositories/{name}")


async def test_bad_key_raises_authentication_error_with_request_id(
    local_server: LocalServer,
) -> None:
    async with AsyncClient(api_key="tuk-wrong", endpoint_url=local_server.endpoint_url) as client:
        with pytest.raises(lamina.AuthenticationError) as caught:
            await client.get("/organizations")
    error = caught.value
    assert error.status_code == 401
    assert error.request_id
    assert error.method == "GET"
    assert error.url == f"{local_server.endpoint_url}/api/v1/organizations"
    assert str(error).startswith(f"GET {error.url} -> 401: ")
    assert f"request_id={error.request_id}" in str(error)


async def test_missing_resource_raises_not_found_error(
    local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    missing = unique_name("nope")
    async with client_for(local_server) as client:
        with pytest.raises(lamina.NotFoundError) as caught:
            await client.get(f"/organizations/{missing}")
    assert caught.value.status_code == 404
    assert missing in caught.value.message
    assert caught.value.code
    assert caught.value.request_id


async def test_request_id_is_echoed(local_server: LocalServer) -> None:
    async with client_for(local_server) as client:
        response = await client.get("/organizations", headers={"X-Request-Id": "core-test-1"})
        assert response.headers["x-request-id"] == "core-test-1"
        assert (await client.get("/organizations")).headers["x-request-id"]


async def test_missing_key_fails_at_the_first_request_not_at_construction(
    local_server: LocalServer, home: Path
) -> None:
    client = AsyncClient(endpoint_url=local_server.endpoint_url)
    async with client:
        with pytest.raises(lamina.ConfigurationError, match="No API key"):
            await client.get("/organizations")
        health = await client.get(f"{local_server.endpoint_url}/healthz", authenticated=False)
        assert health.json() == {"status": "ok"}


async def test_settings_come_from_the_config_file_then_the_environment(
    local_server: LocalServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = home / ".lamina" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        f'api_key = "{local_server.api_key}"\nendpoint_url = "{local_server.endpoint_url}"\n',
        encoding="utf-8",
    )
    async with AsyncClient() as client:
        assert client.endpoint_url == local_server.endpoint_url
        assert (await client.get("/organizations")).status_code == 200

    monkeypatch.setenv("LAMINA_API_KEY", "tuk-from-env")  # the environment beats the file
    async with AsyncClient() as client:
        with pytest.raises(lamina.AuthenticationError):
            await client.get("/organizations")


async def test_paginate_walks_a_real_list_route(
    local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    org = unique_name("pages")
    async with client_for(local_server) as client:
        await client.post("/organizations", json={"name": org, "display_name": org})
        names = sorted(unique_name("r") for _ in range(5))
        for name in names:
            await client.post(f"/organizations/{org}/repositories", json={"name": name})
        route = f"/organizations/{org}/repositories"

        repos = [repo async for repo in client.paginate(route, Repo, page_size=2)]
        assert sorted(repo.name for repo in repos) == names
        assert len({repo.id for repo in repos}) == 5

        sizes = [
            len(page.items) async for page in client.paginate(route, Repo, page_size=2).pages()
        ]
        assert sizes == [2, 2, 1]

        capped = [repo async for repo in client.paginate(route, Repo, amount=3, page_size=2)]
        assert [repo.name for repo in capped] == [repo.name for repo in repos[:3]]

        first = await client.fetch_page(route, Repo, params={"amount": 2})
        assert first.has_more and first.next_offset
        rest = [repo async for repo in client.paginate(route, Repo, after=first.next_offset)]
        assert [repo.name for repo in first.items + rest] == [repo.name for repo in repos]

        with pytest.raises(lamina.BadRequestError, match="amount"):
            await client.fetch_page(route, Repo, params={"amount": 0})


_BIG_BODY = bytes(range(256)) * 12 * 1024  # 3 MiB, sent chunked (no Content-Length)


class _RecordingServer(ThreadingHTTPServer):
    seen: list[dict[str, str]]


class _HeaderRecorder(BaseHTTPRequestHandler):
    """Answers 200 ``{}`` and records the request headers (lower-cased names) on its server."""

    server: _RecordingServer

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append({key.lower(): value for key, value in self.headers.items()})
        if self.path == "/api/v1/big":
            self._send_chunked(_BIG_BODY)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def _send_chunked(self, body: bytes, size: int = 256 * 1024) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), size):
            chunk = body[start : start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_RecordingServer]:
    """A plain HTTP server on another loopback port that records what it was sent."""
    server = _RecordingServer(("127.0.0.1", 0), _HeaderRecorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_headers_on_the_wire(recorder: _RecordingServer) -> None:
    own = f"http://127.0.0.1:{recorder.server_address[1]}"
    other = f"http://localhost:{recorder.server_address[1]}"  # the same socket, another origin
    async with AsyncClient(
        api_key="tuk-wire", endpoint_url=own, default_headers={"X-Team": "core"}
    ) as client:
        await client.get("/organizations")
        await client.get(f"{other}/presigned?sig=1")
        await client.get("/organizations", authenticated=False)
    own_headers, other_headers, anonymous = recorder.seen
    assert own_headers["authorization"] == "Bearer tuk-wire"
    assert own_headers["user-agent"] == f"lamina-python/{lamina.__version__}"
    assert own_headers["x-team"] == "core"
    assert "authorization" not in other_headers
    assert other_headers["user-agent"] == f"lamina-python/{lamina.__version__}"
    assert "authorization" not in anonymous


async def test_a_closed_client_refuses_requests(local_server: LocalServer) -> None:
    client = client_for(local_server)
    async with client:
        assert (await client.get("/organizations")).status_code == 200
    with pytest.raises(lamina.LaminaError, match="closed"):
        await client.get("/organizations")
    await client.aclose()  # closing twice is harmless


async def test_many_requests_at_once_share_one_client(local_server: LocalServer) -> None:
    async with client_for(local_server, max_concurrency=8) as client:
        calls = [functools.partial(client.get, "/organizations") for _ in range(40)]
        responses = await agather_bounded(calls, 16)
    assert [response.status_code for response in responses] == [200] * 40


async def test_stream_maps_errors_and_reads_the_body(local_server: LocalServer) -> None:
    async with client_for(local_server) as client:
        async with client.stream("GET", "/organizations") as response:
            assert response.status_code == 200
            body = await response.aread()
        assert local_server.org.encode() in body
        with pytest.raises(lamina.NotFoundError):
            async with client.stream("GET", "/organizations/no-such-org-here"):
                pytest.fail("an error response is not yielded")


async def test_a_large_body_streams_in_chunks(recorder: _RecordingServer) -> None:
    async with AsyncClient(
        api_key="tuk-wire", endpoint_url=f"http://127.0.0.1:{recorder.server_address[1]}"
    ) as client:
        async with client.stream("GET", "/big") as response:
            chunks = [chunk async for chunk in response.aiter_bytes()]
        assert response.is_closed
    assert len(chunks) > 1
    assert b"".join(chunks) == _BIG_BODY
