"""The fast lane: the hot upload and download routes are served ahead of FastAPI's routing, and
must behave exactly like the routes they stand for — same paths and methods, authentication
before any parameter check, request ids and error envelopes, and everything else passed on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from lamina.testing import LocalServer
from lamina_server.api import data, uploads
from lamina_server.api.lane import lane_routes
from lamina_server.app import API_PREFIX
from lamina_server.config import ServerConfig


def documented_operations() -> set[tuple[str, str]]:
    from lamina_server.app import create_app

    app = create_app(ServerConfig(data_dir=Path("unused"), config_path=None, write_config=False))
    document = app.openapi()
    return {
        (f"{API_PREFIX}{path}" if not path.startswith(API_PREFIX) else path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "servers"
    }


def test_every_lane_route_is_a_documented_route_of_its_router() -> None:
    lane = lane_routes(API_PREFIX, uploads.router, uploads.FAST_LANE)
    lane += lane_routes("", data.router, data.FAST_LANE)
    endpoints = {entry.route.endpoint for entry in lane}
    assert endpoints == {*uploads.FAST_LANE, *data.FAST_LANE}
    documented = documented_operations()
    for entry in lane:
        methods, pattern, route = entry.methods, entry.pattern, entry.route
        assert isinstance(route, APIRoute)
        path = route.path if route.path.startswith(API_PREFIX) else f"{API_PREFIX}{route.path}"
        assert methods == frozenset(route.methods or ())
        assert all((path, method) in documented for method in methods), (path, methods)
        sample = path.replace("{organization}", "org").replace("{repository}", "repo")
        assert pattern.match(sample)
        assert not pattern.match(f"{sample}/more") and not pattern.match(f"{sample}x")


def test_a_lane_endpoint_missing_from_its_router_is_refused() -> None:
    async def stray(request: object) -> None:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="not a route"):
        lane_routes("", data.router, (*data.FAST_LANE, stray))  # type: ignore[arg-type]


@pytest.fixture
def anonymous(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{local_server.endpoint_url}{API_PREFIX}", timeout=30.0) as client:
        yield client


def test_authentication_comes_before_parameter_checks(anonymous: httpx.Client) -> None:
    repo = "/organizations/local/repositories/whatever"
    for response in (
        anonymous.put(f"{repo}/object"),  # no key and no parameters: 401, not 400
        anonymous.post(f"{repo}/object/finalize", content=b"not json"),
        anonymous.put(f"{repo}/object", headers={"Authorization": "Bearer wrong"}),
    ):
        assert response.status_code == 401, response.text
        body = response.json()
        assert body["code"] == "unauthorized"
        assert body["request_id"] == response.headers["x-request-id"]


def test_lane_errors_are_envelopes_with_the_callers_request_id(
    api: httpx.Client, anonymous: httpx.Client, local_server: LocalServer
) -> None:
    ids = {"X-Request-Id": "lane-trace-1"}
    missing_repo = api.put(
        f"/organizations/{local_server.org}/repositories/no-such-repo/object",
        params={"session_id": "s", "path": "a"},
        headers=ids,
    )
    assert missing_repo.status_code == 404
    assert missing_repo.json()["request_id"] == "lane-trace-1"
    assert missing_repo.headers["x-request-id"] == "lane-trace-1"
    forged = anonymous.put("/blobs/upload", params={"token": "abc.def"}, content=b"x", headers=ids)
    assert forged.status_code == 403
    assert forged.json() == {
        "message": "this URL's token has an invalid signature",
        "code": "forbidden",
        "request_id": "lane-trace-1",
    }
    no_token = anonymous.get("/blobs/download")
    assert no_token.status_code == 400
    assert no_token.json()["request_id"] == no_token.headers["x-request-id"]


def test_other_methods_and_near_paths_are_left_to_the_router(
    api: httpx.Client, anonymous: httpx.Client
) -> None:
    not_allowed = anonymous.post("/blobs/upload", params={"token": "abc.def"})
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "PUT"
    assert not_allowed.json()["code"] == "method_not_allowed"
    unknown = anonymous.put("/blobs/uploads", params={"token": "abc.def"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
