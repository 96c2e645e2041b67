"""The application shell over real HTTP: health, authentication, request ids, error envelopes."""

from __future__ import annotations

import re

import httpx
import pytest

from lamina.testing import LocalServer

ENVELOPE_KEYS = {"message", "code", "request_id"}


def assert_envelope(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert all(isinstance(body[key], str) and body[key] for key in ENVELOPE_KEYS)
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code
    return body


@pytest.fixture
def anonymous(local_server: LocalServer) -> httpx.Client:
    with httpx.Client(base_url=local_server.endpoint_url, timeout=30.0) as client:
        yield client


def test_healthz_needs_no_key(anonymous: httpx.Client) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_request_ids_are_generated_unique_and_echoed(api: httpx.Client) -> None:
    first = api.get("/organizations")
    second = api.get("/organizations")
    assert first.status_code == second.status_code == 200
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    echoed = api.get("/organizations", headers={"X-Request-Id": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    failed = api.get("/organizations/no-such-org-here", headers={"X-Request-Id": "trace-43"})
    assert assert_envelope(failed, 404)["request_id"] == "trace-43"


@pytest.mark.parametrize("incoming", ["has space", "x" * 129, "naïve"])
def test_unusable_incoming_request_ids_are_replaced(api: httpx.Client, incoming: str) -> None:
    response = api.get("/organizations", headers=[("X-Request-Id", incoming.encode("utf-8"))])
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer tuk-not-a-real-key", "tuk-x"],
)
def test_missing_or_bad_keys_are_401_envelopes(
    anonymous: httpx.Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/api/v1/organizations"),
        ("POST", "/api/v1/organizations"),
        ("GET", "/api/v1/organizations/local/repositories?amount=0"),
        ("DELETE", "/api/v1/organizations/local/repositories/anything"),
    ]:
        response = anonymous.request(method, path, headers=headers)
        assert_envelope(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_key_with_lowercase_scheme_is_accepted(
    anonymous: httpx.Client, local_server: LocalServer
) -> None:
    response = anonymous.get(
        "/api/v1/organizations", headers={"Authorization": f"bearer {local_server.api_key}"}
    )
    assert response.status_code == 200


def test_unknown_route_is_404_envelope(api: httpx.Client, anonymous: httpx.Client) -> None:
    body = assert_envelope(api.get("/no/such/route"), 404, "not_found")
    assert "/api/v1/no/such/route" in body["message"]
    assert_envelope(anonymous.get("/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_envelope(api: httpx.Client) -> None:
    response = api.patch("/organizations")
    body = assert_envelope(response, 405, "method_not_allowed")
    assert "PATCH" in body["message"]
    assert "GET" in response.headers["allow"]


def test_malformed_json_body_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/organizations",
        content=b'{"name": "x",',
        headers={"Content-Type": "application/json"},
    )
    body = assert_envelope(response, 400, "bad_request")
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "request body is required"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'"text"', "request body must be a JSON object"),
        (b"{}", "name: is required"),
    ],
)
def test_body_shape_errors_name_the_problem(
    api: httpx.Client, content: bytes, expected: str
) -> None:
    response = api.post(
        "/organizations", content=content, headers={"Content-Type": "application/json"}
    )
    assert expected in assert_envelope(response, 400, "bad_request")["message"]


def test_query_type_errors_name_the_field(api: httpx.Client, repository: str) -> None:
    org, _ = repository.split("/")
    response = api.get(f"/organizations/{org}/repositories", params={"amount": "many"})
    assert assert_envelope(response, 400)["message"].startswith("amount: ")


def test_openapi_document_is_served(anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert "/organizations/{organization}/repositories" in document["paths"]
