"""The checked-in OpenAPI document is true of the running server: schemathesis sends every
operation of ``docs/api/openapi.json`` generated requests (valid and invalid ones) and checks
that no answer is a 5xx and that every answer's status, content type, headers and body are
documented.

Generation is deterministic (``LAMINA_SCHEMATHESIS_SEED``, default 7; no example database)
and bounded: ``LAMINA_SCHEMATHESIS_EXAMPLES`` examples per operation (default 25; raise it for
a longer run, e.g. 500).

Random path parameters would only ever find nothing, so the organization and the repository
are fixed to real ones, and session ids, commit ids, object paths and signed-URL tokens are
drawn from real values as well as generated ones (see :class:`World`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lamina.testing import LocalServer
from tests.conftest import RepoHttp

# Its world fills the local data plane's routes (/api/v1/blobs) with their tokens; a server
# whose blobs are in S3 serves no such routes.
pytestmark = pytest.mark.local_blobs_only("fuzzes the local data plane's routes too")

# A batched upload's tar archive is bytes, generated as the raw bodies of other uploads are.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"
EXAMPLES = int(os.environ.get("LAMINA_SCHEMATHESIS_EXAMPLES", "25"))
SEED = int(os.environ.get("LAMINA_SCHEMATHESIS_SEED", "7"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class World:
    """Real values a generated request takes some of, so that it gets past 404 and 403.

    ``values`` are alternatives for one parameter or body field at a time; a ``bundle`` sets
    several that only work together (an upload's session, path and token) where the request
    has all of them.
    """

    values: dict[str, list[Any]] = field(default_factory=dict)
    bundles: list[dict[str, Any]] = field(default_factory=list)
    repo: RepoHttp | None = None

    def fresh(self, case: schemathesis.Case) -> None:
        """Gives the case a session of its own where it drew :data:`FRESH` (a commit or a
        rollback closes the session it names)."""
        assert self.repo is not None
        for part in _parts(case):
            for name, value in part.items():
                if value is FRESH:
                    session = self.repo.session()
                    self.repo.put(session, "data/fresh.txt", b"fresh")
                    part[name] = session


# Stands for a new open session with a staged object, made when the case is sent.
FRESH = object()


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def _build_world(api: httpx.Client, repo: RepoHttp) -> World:
    """A repository with two commits, an open session with a staged object, an upload whose
    bytes arrived, an upload URL not used yet and a multipart upload with one part."""
    first = repo.session()
    repo.put(first, "data/a.txt", b"hello")
    repo.put(first, "data/b.txt", b"world")
    head = repo.commit(first)
    root = api.get(f"{repo.base}/log").json()["results"][-1]["id"]
    session = repo.session()
    repo.put(session, "data/c.txt", b"staged")
    base = repo.base

    def start(path: str) -> dict[str, str]:
        query = {"session_id": session, "path": path}
        started: dict[str, str] = api.put(f"{base}/object", params=query).json()
        return started

    uploaded = start("data/d.txt")
    assert httpx.put(uploaded["upload_url"], content=b"uploaded").is_success
    unused = start("data/f.txt")
    query = {"session_id": session, "path": "data/e.bin"}
    multipart = api.post(f"{base}/object/multipart", params=query).json()
    upload = {"upload_id": multipart["upload_id"], "upload_token": multipart["upload_token"]}
    part = api.get(
        f"{base}/object/multipart/part", params={**query, **upload, "part_number": 1}
    ).json()
    etag = httpx.put(part["upload_url"], content=b"part").headers["etag"]
    read = api.get(f"{base}/object", params={"path": "data/a.txt"})
    commits = [head, root]
    paths = ["data/a.txt", "data/b.txt", "data/c.txt"]
    return World(
        repo=repo,
        values={
            "session_id": [session, FRESH],
            "commit_id": commits,
            "ref": commits,
            "left": commits,
            "right": commits,
            "path": paths,
            "source_path": paths,
            "object": paths,
            "prefix": ["data/"],
            "paths": [paths],
            "username": ["admin"],
            "If-Range": [f'"{hashlib.md5(b"hello").hexdigest()}"'],
            "token": [
                _token(read.headers["location"]),
                _token(unused["upload_url"]),
                _token(part["upload_url"]),
            ],
        },
        bundles=[
            {"session_id": session, "path": "data/d.txt", "upload_token": uploaded["upload_token"]},
            {
                **query,
                **upload,
                "parts": [{"part_number": 1, "etag": etag}],
            },
            {**query, **upload},
            {"session_id": session, "source_path": "data/a.txt", "destination_path": "data/g.txt"},
        ],
    )


def _parts(case: schemathesis.Case) -> list[dict[str, Any]]:
    """The case's parameter and body dictionaries, which the world's values may replace in."""
    parts = [case.path_parameters, case.query, case.headers]
    if isinstance(case.body, dict):
        parts.append(case.body)
    return [part for part in parts if part is not None]


def _with_world(case: schemathesis.Case, world: World) -> st.SearchStrategy[schemathesis.Case]:
    names = {name for part in _parts(case) for name in part}
    bundles = [bundle for bundle in world.bundles if set(bundle) <= names]
    singles = {name: world.values[name] for name in names & set(world.values)}

    def apply(choice: tuple[dict[str, Any], dict[str, Any]]) -> schemathesis.Case:
        bundle, single = choice
        chosen = {**{k: v for k, v in single.items() if v is not None}, **bundle}
        for part in _parts(case):
            for name in part.keys() & chosen.keys():
                part[name] = chosen[name]
        return case

    return st.tuples(
        st.sampled_from([{}, *bundles]),
        st.fixed_dictionaries(
            {name: st.sampled_from([None, *values]) for name, values in singles.items()}
        ),
    ).map(apply)


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@dataclass
class _Current:
    """The world of the operation under test (the hooks run inside the test, after its
    fixtures)."""

    world: World | None = None
    organization: str = ""
    repository: str = ""


_CURRENT = _Current()


@schema.hook
def flatmap_case(context: Any, case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
    assert _CURRENT.world is not None
    if case.path_parameters:
        # Random names would only ever find nothing.
        case.path_parameters["organization"] = _CURRENT.organization
        if "repository" in case.path_parameters:
            case.path_parameters["repository"] = _CURRENT.repository
    return _with_world(case, _CURRENT.world)


@pytest.fixture
def world(api: httpx.Client, unique_name: Callable[..., str]) -> Iterator[World]:
    """A fresh organization and repository for each operation (some delete them), with real
    values."""
    org = unique_name("org")
    created = api.post("/organizations", json={"name": org, "display_name": "Schemathesis"})
    assert created.status_code == 201, created.text
    name = unique_name("repo")
    created = api.post(f"/organizations/{org}/repositories", json={"name": name})
    assert created.status_code == 201, created.text
    repo = RepoHttp(api, f"{org}/{name}")
    _CURRENT.organization, _CURRENT.repository = repo.repository.split("/")
    _CURRENT.world = _build_world(api, repo)
    try:
        yield _CURRENT.world
    finally:
        _CURRENT.world = None


@schema.parametrize()
# The world is the operation's, shared by its examples on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_server_keeps_to_its_document(
    case: schemathesis.Case, world: World, local_server: LocalServer
) -> None:
    # /healthz is documented at the server's root (its own `servers` entry).
    root = case.operation.path == "/healthz"
    base_url = local_server.endpoint_url if root else f"{local_server.endpoint_url}/api/v1"
    world.fresh(case)
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {local_server.api_key}"},
        checks=CHECKS,
        allow_redirects=False,
    )
