"""Abuse of the request path: bodies are read only after the key is checked and never past
their limit, malformed input is a 400 envelope (never a 500), and errors explain themselves
even where a response has no body."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.api.bodies import MAX_JSON_BODY


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw_request(server: LocalServer, head: str, body_chunks: int, chunk: bytes) -> bytes:
    """Sends ``head`` and up to ``body_chunks`` chunks of body, stopping as soon as the server
    answers; returns what it answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head.encode("latin-1"))
        conn.settimeout(0.001)
        answer = b""
        for _ in range(body_chunks):
            try:
                conn.sendall(chunk)
            except OSError:
                break
            try:
                answer = conn.recv(65536)
                if answer:
                    break
            except (TimeoutError, BlockingIOError):
                continue
        conn.settimeout(30)
        while b"\r\n\r\n" not in answer:
            more = conn.recv(65536)
            if not more:
                break
            answer += more
        return answer


JSON_ROUTES = [
    ("POST", "/organizations"),
    ("POST", "/organizations/{org}/members"),
    ("POST", "/organizations/{org}/repositories"),
    ("PUT", "/organizations/{org}/repositories/{repo}"),
    ("POST", "/organizations/{org}/repositories/{repo}/sessions/s"),
    ("POST", "/organizations/{org}/repositories/{repo}/commits/c/revert"),
    ("POST", "/organizations/{org}/repositories/{repo}/object/multipart/complete"),
    ("POST", "/organizations/{org}/repositories/{repo}/objects/delete"),
    ("POST", "/organizations/{org}/repositories/{repo}/object/finalize"),
]


@pytest.mark.parametrize(("method", "template"), JSON_ROUTES)
def test_a_keyless_huge_body_is_refused_before_it_is_read(
    local_server: LocalServer, repository: str, method: str, template: str
) -> None:
    org, repo = repository.split("/")
    path = "/api/v1" + template.format(org=org, repo=repo) + "?session_id=s&path=p"
    declared = 400 * 1024 * 1024
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    assert local_server.pid is not None
    before = rss_bytes(local_server.pid)
    # Up to 64 MiB are offered; the server answers long before taking them.
    answer = raw_request(local_server, head, 1024, b"[" * 65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert rss_bytes(local_server.pid) - before < 32 * 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(
    "template",
    [
        "/organizations/{org}/repositories/{repo}/sessions/s",
        "/organizations/{org}/repositories/{repo}/object/finalize?session_id=s&path=p",
    ],
)
def test_a_json_body_past_the_limit_is_a_413_envelope(
    api: httpx.Client, repository: str, template: str, chunked: bool
) -> None:
    org, repo = repository.split("/")
    body = b'{"message": "' + b"x" * MAX_JSON_BODY + b'"}'
    content = iter([body]) if chunked else body
    response = api.post(
        template.format(org=org, repo=repo),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    payload = response.json()
    assert payload["code"] == "request_too_large"
    assert str(MAX_JSON_BODY) in payload["message"]
    assert payload["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 980 + b"1" + b"}" * 980, b'{"message": ' + b"[" * 5000],
    ids=["deep-array", "deep-object", "deep-field"],
)
@pytest.mark.parametrize(
    "template",
    [
        "/organizations/{org}/repositories/{repo}/sessions/{sid}",
        "/organizations/{org}/repositories/{repo}/object/finalize?session_id={sid}&path=p",
        "/organizations/{org}/repositories/{repo}/objects/delete?session_id={sid}",
    ],
)
def test_deeply_nested_json_is_a_400_not_a_500(
    api: httpx.Client, repository: str, template: str, body: bytes
) -> None:
    org, repo = repository.split("/")
    sid = api.post(f"/organizations/{org}/repositories/{repo}/sessions").json()["session_id"]
    response = api.post(
        template.format(org=org, repo=repo, sid=sid),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"


@pytest.mark.parametrize("query", ["path=%FF", "path=a%C3%28b", "prefix=%E2%82"])
@pytest.mark.parametrize("lane", ["object", "objects"])
def test_a_query_that_is_not_utf8_is_refused(
    api: httpx.Client, repository: str, query: str, lane: str
) -> None:
    org, repo = repository.split("/")
    sid = api.post(f"/organizations/{org}/repositories/{repo}/sessions").json()["session_id"]
    method = "PUT" if lane == "object" else "GET"
    url = f"/organizations/{org}/repositories/{repo}/{lane}?session_id={sid}&{query}"
    response = api.request(method, url)
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.json()["message"]


def test_raw_non_ascii_query_bytes_are_refused(local_server: LocalServer, repository: str) -> None:
    org, repo = repository.split("/")
    head = (
        f"GET /api/v1/organizations/{org}/repositories/{repo}/objects?prefix=\xe9 HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {local_server.api_key}\r\n\r\n"
    )
    answer = raw_request(local_server, head, 0, b"")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


def test_errors_without_a_body_say_what_went_wrong_in_headers(
    api: httpx.Client, repository: str
) -> None:
    org, repo = repository.split("/")
    response = api.head(
        f"/organizations/{org}/repositories/{repo}/object", params={"path": "missing/ü.txt"}
    )
    assert response.status_code == 404
    assert response.content == b""
    assert response.headers["x-error-code"] == "object_not_found"
    assert unquote(response.headers["x-error-message"]) == "object 'missing/ü.txt' not found"


@pytest.mark.parametrize("path", ["a/./b", "./a", "a//b", "dir/", "a/.", "a/../b"])
def test_paths_with_dot_or_empty_segments_are_refused_at_put(
    api: httpx.Client, repository: str, path: str
) -> None:
    org, repo = repository.split("/")
    base = f"/organizations/{org}/repositories/{repo}"
    sid = api.post(f"{base}/sessions").json()["session_id"]
    response = api.put(f"{base}/object", params={"session_id": sid, "path": path})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_path"
    copy = api.post(
        f"{base}/object/copy",
        params={"session_id": sid, "source_path": "x", "destination_path": path},
    )
    assert copy.status_code == 400 and copy.json()["code"] == "invalid_path"
