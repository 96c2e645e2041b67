"""Unexpected exceptions become a logged 500 envelope carrying the request id.

A real server can't be made to fail on demand, so this runs the real app, plus one route that
raises, under uvicorn on a loopback socket in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from lamina_server.api.access import LaminaRoute, public
from lamina_server.api.lane import lane_routes
from lamina_server.app import create_app
from lamina_server.config import ServerConfig
from tests.server.in_process import serving


@pytest.fixture
def failing_server(tmp_path: Path) -> Iterator[str]:
    app = create_app(ServerConfig(data_dir=tmp_path, config_path=None, write_config=False))

    router = APIRouter(route_class=LaminaRoute)

    @router.get("/boom", dependencies=[public()])
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @router.get("/lane-boom", dependencies=[public()])
    async def lane_boom(request: Request) -> Response:
        raise RuntimeError("kaboom in the lane")

    app.include_router(router)
    # A fast-lane route that fails the same way: served ahead of FastAPI, it must end the same.
    app.lane = (*app.lane, *lane_routes("", router, (lane_boom,)))

    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def test_unexpected_exception_is_a_logged_500_envelope(
    failing_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="lamina_server"):
        response = httpx.get(f"{failing_server}/boom", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    assert response.json() == {
        "message": "internal server error",
        "code": "internal_error",
        "request_id": "req-500",
    }
    assert response.headers["x-request-id"] == "req-500"
    assert "kaboom" not in response.text
    logged = [r for r in caplog.records if r.name == "lamina_server"]
    assert logged and "req-500" in logged[0].getMessage()
    assert logged[0].exc_info is not None and "kaboom" in str(logged[0].exc_info[1])

    # The server keeps serving.
    assert httpx.get(f"{failing_server}/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/boom", "/lane-boom"])
def test_unexpected_exception_in_either_lane_is_the_same_logged_envelope(
    failing_server: str, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="lamina_server"):
        response = httpx.get(f"{failing_server}{path}")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and "kaboom" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    logged = [r for r in caplog.records if r.name == "lamina_server"]
    assert logged and body["request_id"] in logged[0].getMessage()
    assert logged[0].exc_info is not None and "kaboom" in str(logged[0].exc_info[1])
