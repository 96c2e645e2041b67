"""The authorization seam: every route declares its action, and one prelude — for FastAPI's routes
and the fast lane alike — authenticates, authorizes and only then lets a body be read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, WebSocket
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute, Route

from lamina_server.api.access import (
    LaminaRoute,
    Scope,
    _declared,
    declaration_of,
    public,
    refuse_undeclared_sockets,
    walk_routes,
)
from lamina_server.api.html import PageRoute
from lamina_server.app import API_PREFIX, create_app
from lamina_server.authz import Action, Authorizer, Decision, Resource
from lamina_server.config import ServerConfig
from lamina_server.principals import Principal
from lamina_server.velerian.access import VelerianDeclaration
from lamina_server.velerian.keys import SCOPES
from tests.server.in_process import serving


def _all_routes() -> list[BaseRoute]:
    app = create_app(ServerConfig(data_dir=Path("unused"), config_path=None, write_config=False))
    return list(walk_routes(app.routes))


def _app_routes() -> list[APIRoute]:
    routes = _all_routes()
    # The OpenAPI document itself is Starlette's plain route, served without credentials.
    assert all(
        isinstance(r, APIRoute | APIWebSocketRoute) or r.path.endswith("openapi.json")
        for r in routes
    )
    return [route for route in routes if isinstance(route, APIRoute)]


def test_every_websocket_route_declares_its_action() -> None:
    sockets = [route for route in _all_routes() if isinstance(route, APIWebSocketRoute)]
    declared = {
        route.path.removeprefix(API_PREFIX): _declared(route.dependencies) for route in sockets
    }
    sandbox = "/organizations/{organization}/repositories/{repository}/sandboxes/{sandbox_id}"
    assert set(declared) == {f"{sandbox}/exec", f"{sandbox}/terminal"}
    for declaration in declared.values():
        assert declaration is not None and declaration.scope is Scope.REPOSITORY
        assert declaration.actions == (Action.EXEC_SANDBOX,)


def test_a_websocket_route_without_a_declaration_is_refused() -> None:
    router = APIRouter()

    @router.websocket("/undeclared")
    async def handler(websocket: WebSocket) -> None:
        raise AssertionError("never served")

    with pytest.raises(TypeError, match="declares no action"):
        refuse_undeclared_sockets(router.routes)


def test_every_route_declares_its_action_and_scope() -> None:
    routes = _app_routes()
    assert len(routes) >= 25
    for route in routes:
        declaration = declaration_of(route)
        assert isinstance(route, LaminaRoute), route.path
        assert declaration is not None and declaration is route.declaration, route.path
        # A page, and only a page, is served by the page route class (its errors are pages).
        assert declaration.browser is isinstance(route, PageRoute), route.path
        if declaration.scope is Scope.PUBLIC:
            # Liveness, sign-in and -out, the key evidence is verified against, and what the
            # server offers beyond the contract.
            assert route.path.removeprefix(API_PREFIX) in (
                "/healthz",
                "/capabilities",
                "/evidence/public-key",
                "/login",
                "/logout",
            )
            continue
        assert declaration.actions, route.path
        assert all(isinstance(action, Action) for action in declaration.actions)
        if declaration.browser:
            assert declaration.scope is Scope.REPOSITORY, route.path
            assert route.path.startswith("/approvals/{organization}/{repository}"), route.path
        elif declaration.scope is Scope.REPOSITORY:
            assert "{organization}/repositories/{repository}" in route.path
        elif declaration.scope is Scope.ORGANIZATION:
            assert "{organization}" in route.path and "{repository}" not in route.path
        elif declaration.scope is Scope.TENANT:
            # /api/v2: a Velerian key's scope, and the Lamina actions it maps to.
            assert isinstance(declaration, VelerianDeclaration), route.path
            assert declaration.key_scope in SCOPES, route.path
        elif declaration.scope is Scope.SIGNED:
            assert declaration.token_kind, route.path
            assert route.path.startswith(f"{API_PREFIX}/blobs/") or (
                route.path.removeprefix(API_PREFIX) == "/evidence/download"
            )


def test_the_routes_name_the_actions_of_the_contract() -> None:
    declared = {
        (method, route.path.removeprefix(API_PREFIX)): declaration_of(route)
        for route in _app_routes()
        for method in route.methods or ()
    }
    repo = "/organizations/{organization}/repositories/{repository}"
    expected = {
        ("GET", f"{repo}/object"): (Action.GET_OBJECT,),
        ("PUT", f"{repo}/object"): (Action.PUT_OBJECT,),
        ("POST", f"{repo}/object/finalize"): (Action.PUT_OBJECT,),
        ("DELETE", f"{repo}/object"): (Action.DELETE_OBJECT,),
        ("POST", f"{repo}/object/copy"): (Action.GET_OBJECT, Action.PUT_OBJECT),
        ("POST", f"{repo}/sessions"): (Action.CREATE_SESSION,),
        ("GET", f"{repo}/sessions"): (Action.GET_SESSION,),
        ("POST", f"{repo}/sessions/{{session_id}}"): (Action.COMMIT_SESSION,),
        ("GET", f"{repo}/log"): (Action.LIST_COMMITS,),
        ("DELETE", repo): (Action.DELETE_REPOSITORY,),
        ("GET", "/organizations/{organization}/repositories"): (Action.LIST_REPOSITORIES,),
        ("POST", f"{repo}/sandboxes"): (Action.CREATE_SANDBOX,),
        ("GET", f"{repo}/sandboxes"): (Action.LIST_SANDBOXES,),
        ("GET", f"{repo}/sandboxes/{{sandbox_id}}/status"): (Action.GET_SANDBOX,),
        ("DELETE", f"{repo}/sandboxes/{{sandbox_id}}"): (Action.CANCEL_SANDBOX,),
        ("POST", f"{repo}/sandboxes/{{sandbox_id}}/finish"): (Action.FINISH_SANDBOX,),
        ("GET", f"{repo}/secrets"): (Action.MANAGE_SECRETS,),
        ("PUT", f"{repo}/secrets/{{secret_key}}"): (Action.MANAGE_SECRETS,),
        ("GET", f"{repo}/secrets/{{secret_key}}"): (Action.GET_SECRET,),
        ("DELETE", f"{repo}/secrets/{{secret_key}}"): (Action.MANAGE_SECRETS,),
        ("GET", "/approvals/{organization}/{repository}/{session_id}"): (Action.GET_SESSION,),
        ("POST", "/approvals/{organization}/{repository}/{session_id}/approve"): (
            Action.APPROVE_SESSION,
        ),
        ("POST", "/approvals/{organization}/{repository}/{session_id}/reject"): (
            Action.APPROVE_SESSION,
        ),
    }
    for key, actions in expected.items():
        declaration = declared[key]
        assert declaration is not None and declaration.actions == actions, key


def test_a_route_without_a_declaration_is_refused() -> None:
    async def handler() -> None:
        raise AssertionError("never served")

    with pytest.raises(TypeError, match="declares no action"):
        LaminaRoute("/undeclared", handler, methods=["GET"])
    assert LaminaRoute("/declared", handler, methods=["GET"], dependencies=[public()])


# --- one prelude for both lanes ---------------------------------------------------------------


@dataclass
class RecordingAuthorizer(Authorizer):
    """Asks the real authorizer, remembers every question, and denies the actions in ``deny``."""

    inner: Authorizer
    deny: set[Action] = field(default_factory=set)
    asked: list[tuple[str, Action, str]] = field(default_factory=list)

    async def authorize(
        self,
        principal: Principal,
        action: Action,
        resource: Resource,
        *,
        epoch: int | None = None,
    ) -> Decision:
        self.asked.append((principal.name, action, str(resource)))
        if action in self.deny:
            return Decision(False, "denied by the test's policy")
        decision = await self.inner.authorize(principal, action, resource, epoch=epoch)
        assert decision.allowed, decision.reason
        return decision


@dataclass
class InProcessServer:
    url: str
    authorizer: RecordingAuthorizer
    api_key: str


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[InProcessServer]:
    """The real app on a loopback socket in this process, with a recording authorizer."""
    config_path = tmp_path / "config.toml"
    app = create_app(ServerConfig(data_dir=tmp_path / "data", config_path=config_path))
    with serving(app) as port:
        services = app.state.services
        authorizer = RecordingAuthorizer(services.authorizer)
        services.authorizer = authorizer
        key = next(
            line.split('"')[1]
            for line in config_path.read_text().splitlines()
            if line.startswith("api_key")
        )
        yield InProcessServer(f"http://127.0.0.1:{port}{API_PREFIX}", authorizer, key)


def test_the_lane_and_the_framework_run_the_same_prelude(in_process: InProcessServer) -> None:
    headers = {"Authorization": f"Bearer {in_process.api_key}"}
    with httpx.Client(base_url=in_process.url, headers=headers) as api:
        assert api.post("/organizations/local/repositories", json={"name": "seam"}).is_success
        repo = "/organizations/local/repositories/seam"
        sid = api.post(f"{repo}/sessions").json()["session_id"]
        in_process.authorizer.asked.clear()
        lane = api.put(f"{repo}/object", params={"session_id": sid, "path": "a"})
        framework = api.get(f"{repo}/objects")
        assert lane.status_code == framework.status_code == 200
        assert in_process.authorizer.asked == [
            ("admin", Action.PUT_OBJECT, "local/seam/a"),
            ("admin", Action.LIST_OBJECTS, "local/seam"),
        ]

        # A policy that denies is obeyed, and audited, the same way on both paths.
        in_process.authorizer.deny = {Action.PUT_OBJECT, Action.LIST_OBJECTS}
        denied = [
            api.put(f"{repo}/object", params={"session_id": sid, "path": "a"}),
            api.post(
                f"{repo}/object/finalize",
                params={"session_id": sid, "path": "a"},
                json={"upload_token": "never-read"},
            ),
            api.get(f"{repo}/objects"),
        ]
        # The denials are in the audit log, with their requests' ids.
        in_process.authorizer.deny = set()
        log = api.get("/organizations/local/audit-log", params={"outcome": "denied"}).json()
    for response in denied:
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["code"] == "forbidden"
        assert " on local/seam" in body["message"]
        assert "is not allowed: denied by the test's policy" in body["message"]
        assert body["request_id"] == response.headers["x-request-id"]
    assert [entry["action"] for entry in log["items"]] == ["PutObject", "PutObject", "ListObjects"]
    assert [entry["request_id"] for entry in log["items"]] == [
        response.headers["x-request-id"] for response in denied
    ]
    assert all(entry["resource"].startswith("local/seam") for entry in log["items"])


def test_a_websocket_is_authorized_by_the_same_prelude(in_process: InProcessServer) -> None:
    headers = {"Authorization": f"Bearer {in_process.api_key}"}
    with httpx.Client(base_url=in_process.url, headers=headers) as api:
        assert api.post("/organizations/local/repositories", json={"name": "sockets"}).is_success
    in_process.authorizer.deny = {Action.EXEC_SANDBOX}
    upgrade = {
        **headers,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    url = f"{in_process.url}/organizations/local/repositories/sockets/sandboxes/x/exec"
    refused = httpx.get(url, headers=upgrade)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden" and "ExecSandbox" in refused.json()["message"]
    in_process.authorizer.deny = set()
    log = httpx.get(
        f"{in_process.url}/organizations/local/audit-log",
        params={"outcome": "denied"},
        headers=headers,
    ).json()
    assert [(e["action"], e["resource"]) for e in log["items"]] == [
        ("ExecSandbox", "local/sockets")
    ]
    assert log["items"][0]["request_id"] == refused.json()["request_id"]


def test_openapi_route_is_the_only_undeclared_route() -> None:
    app = create_app(ServerConfig(data_dir=Path("unused"), config_path=None, write_config=False))
    plain = [r for r in walk_routes(app.routes) if not isinstance(r, APIRoute | APIWebSocketRoute)]
    # The Velerian facade's own document, at /api/v2/openapi.json (a mounted application).
    assert [r.path for r in plain if isinstance(r, Route)] == [
        f"{API_PREFIX}/openapi.json",
        "/openapi.json",
    ]
