"""Shared fixtures: one real reference server on loopback for the whole test session.

Tests that need isolation create their own organization/repository with a unique name
(``unique_name``) instead of restarting the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from lamina.testing import LocalServer


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A started :class:`LocalServer` on a temporary data dir (bootstrap org ``local``)."""
    server = LocalServer(data_dir=tmp_path_factory.mktemp("lamina-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """``unique_name("repo")`` -> ``"repo-1f2e3d4c5b6a"``: a fresh, valid org/repo name."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def api(local_server: LocalServer) -> Iterator[httpx.Client]:
    """A raw HTTP client on ``<endpoint>/api/v1`` authenticated with the bootstrap key."""
    with httpx.Client(
        base_url=f"{local_server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        timeout=60.0,
    ) as client:
        yield client


@pytest.fixture
def repository(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> str:
    """A fresh repository in the bootstrap organization, as ``"org/repo"``."""
    name = unique_name("repo")
    response = api.post(f"/organizations/{local_server.org}/repositories", json={"name": name})
    assert response.status_code == 201, response.text
    return f"{local_server.org}/{name}"


class RepoHttp:
    """Raw-HTTP steps on one repository, for server tests: sessions, staged puts and deletes,
    commits, and reads of HEAD. Each method asserts its request succeeded."""

    def __init__(self, api: httpx.Client, repository: str) -> None:
        self.api = api
        self.repository = repository
        org, name = repository.split("/")
        self.base = f"/organizations/{org}/repositories/{name}"

    def session(self) -> str:
        response = self.api.post(f"{self.base}/sessions")
        assert response.status_code == 201, response.text
        session_id: str = response.json()["session_id"]
        return session_id

    def put(self, session_id: str, path: str, data: bytes) -> None:
        """The single-upload protocol: ask for a URL, upload the bytes, finalize."""
        query = {"session_id": session_id, "path": path}
        started = self.api.put(f"{self.base}/object", params=query)
        assert started.status_code == 200, started.text
        ticket = started.json()
        uploaded = httpx.put(
            ticket["upload_url"],
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60.0,
        )
        assert uploaded.is_success, uploaded.text
        finalized = self.api.post(
            f"{self.base}/object/finalize",
            params=query,
            json={
                "upload_token": ticket["upload_token"],
                "content_type": "application/octet-stream",
                "checksum": uploaded.headers["etag"].strip('"'),
                "size_bytes": len(data),
            },
        )
        assert finalized.status_code == 201, finalized.text

    def delete(self, session_id: str, path: str) -> None:
        response = self.api.delete(
            f"{self.base}/object", params={"session_id": session_id, "path": path}
        )
        assert response.status_code == 204, response.text

    def commit(self, session_id: str, message: str = "change") -> str:
        response = self.api.post(f"{self.base}/sessions/{session_id}", json={"message": message})
        assert response.status_code == 200, response.text
        commit_id: str = response.json()["commit_id"]
        return commit_id

    def tree(self, **params: str) -> dict[str, str]:
        """Every object at HEAD (or at ``ref=``/``session_id=``): path -> e_tag."""
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            query: dict[str, str | int] = {**params, "amount": 1000}
            if after:
                query["after"] = after
            response = self.api.get(f"{self.base}/objects", params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            for item in body["results"]:
                found[item["path"]] = item["entry"]["e_tag"]
            if not body["pagination"]["has_more"]:
                return found
            after = body["pagination"]["next_offset"]

    def read(self, path: str, **params: str) -> bytes:
        response = self.api.get(
            f"{self.base}/object", params={"path": path, **params}, follow_redirects=True
        )
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture
def repo_http(api: httpx.Client, repository: str) -> RepoHttp:
    """:class:`RepoHttp` on a fresh repository."""
    return RepoHttp(api, repository)


@pytest.fixture
def new_repo_http(
    api: httpx.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> Callable[[], RepoHttp]:
    """Makes further fresh repositories, each wrapped in a :class:`RepoHttp`."""

    def make() -> RepoHttp:
        name = unique_name("repo")
        response = api.post(f"/organizations/{local_server.org}/repositories", json={"name": name})
        assert response.status_code == 201, response.text
        return RepoHttp(api, f"{local_server.org}/{name}")

    return make
