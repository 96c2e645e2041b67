"""The authorization seam: every route declares what it does, and one prelude checks it.

A route names its action(s) and resource where it is registered::

    @router.get(f"{R}/object", dependencies=[repository_action(Action.GET_OBJECT, path="query:path")])

An action on an object names where its path comes from: ``"query:<name>"`` is checked by the
prelude, with the path as part of the resource; ``"body:<field>"`` (a string or a list of
strings in the JSON body) is checked, through the same authorizer, as soon as the bounded body
has been read and before the handler runs; ``"stream:<what>"`` names paths that only a streamed
body tells, one item at a time (a batched upload's objects): the handler asks
:func:`authorize_streamed` about each as it arrives, before it stores a byte of it. A route with different paths for its actions names
each, as :func:`at` does (a copy reads ``source_path`` and writes ``destination_path``).

and :func:`prelude` runs before anything else of the request — before FastAPI reads a body
or validates a parameter — for ordinary routes (:class:`LaminaRoute`) and for the app's fast
lane alike. It:

1. gives the request its id (:mod:`lamina_server.api.request_ids`);
2. refuses a query string that is not UTF-8 (two different raw keys must never read as one);
3. authenticates the API key (or, on the token-only data plane, verifies the URL's token; or,
   on a page, the session cookie of a signed-in browser: :func:`~lamina_server.api.authentication.authenticate_browser`);
4. resolves the organization, asks :meth:`Authorizer.authorize` about every declared action,
   and tells the audit hook about a denial (404 when the caller may not learn that the
   resource exists, else a 403 naming action, resource and reason);
5. resolves the repository,
6. for a body-path action, once the body is read, asks the authorizer about each path,

and leaves the outcome, an :class:`Access`, where handlers find it (:data:`AccessDep`). A
request body is read only after that, and no more than :data:`MAX_JSON_BODY` bytes of it (or
the smaller ``body_limit`` a declaration names).

A page (a declaration made with ``browser=True``: :func:`public_page`, :func:`repository_page`)
is authorized exactly as an API route is, with the browser session as its credential. The form
a page posts is read (bounded, URL-encoded) before the handler runs; it is refused unless the
request comes from the server's own origin (when the browser says where it comes from) and,
once signed in, unless it carries the session's CSRF token
(:func:`~lamina_server.api.page_forms.check_form`). Handlers find it as
:data:`~lamina_server.api.page_forms.PageForm`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount

from lamina_server.api.authentication import (
    authenticate,
    authenticate_browser,
    check_query_encoding,
    verify_token,
)
from lamina_server.api.bodies import MAX_JSON_BODY, read_body, replaying
from lamina_server.api.deps import Services, query
from lamina_server.api.errors import forbidden, not_found
from lamina_server.api.page_forms import check_form
from lamina_server.api.params import OrgName, RepoName
from lamina_server.api.request_ids import ensure_request_id
from lamina_server.authz import Action, Decision, Resource
from lamina_server.governance.audit import AuditEvent, RequestFacts, serving, subject_of
from lamina_server.identity import OrganizationRecord
from lamina_server.principals import Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage import journal

MAX_FORM_BODY = 256 * 1024


class Scope(enum.Enum):
    """What a route acts on, and so what the prelude resolves and authorizes."""

    PUBLIC = "public"  # no credential at all (liveness)
    SIGNED = "signed"  # a presigned URL: its token is the only credential and names the blob
    ACCOUNT = "account"  # the caller's own organizations
    ORGANIZATION = "organization"  # /organizations/{organization}/...
    REPOSITORY = "repository"  # /organizations/{organization}/repositories/{repository}/...
    TENANT = "tenant"  # /api/v2: the organization of the Velerian key (lamina_server.velerian)


@dataclass(frozen=True, slots=True)
class Check:
    """One declared action, and where the object path it acts on comes from (if any):
    ``"query:<parameter>"``, ``"body:<field>"`` or ``"stream:<item>"``."""

    action: Action
    path: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            source, _, name = self.path.partition(":")
            if source not in ("query", "body", "stream") or not name:
                raise ValueError(
                    f"path source {self.path!r} is not 'query:<name>', 'body:<name>' "
                    "or 'stream:<name>'"
                )

    @property
    def in_body(self) -> bool:
        return self.path is not None and self.path.startswith("body:")

    @property
    def in_stream(self) -> bool:
        return self.path is not None and self.path.startswith("stream:")


def at(action: Action, path: str) -> Check:
    """``action`` on the object path that ``path`` (``"query:<name>"``/``"body:<name>"``) names."""
    return Check(action, path)


class Declaration:
    """A route's declared actions and scope (for :attr:`Scope.SIGNED`, the token kind).

    It is registered as a route dependency so that it stands where the route is; the prelude
    does its work. As a dependency it only names, so that FastAPI documents and validates
    them, the path parameters its scope resolves; handlers take the outcome as
    :data:`AccessDep`.
    """

    def __init__(
        self,
        checks: tuple[Check, ...],
        scope: Scope,
        token_kind: str | None = None,
        body_limit: int = MAX_JSON_BODY,
        *,
        browser: bool = False,
    ) -> None:
        self.checks = checks
        self.actions = tuple(check.action for check in checks)
        self.body_checks = tuple(check for check in checks if check.in_body)
        self.scope = scope
        self.token_kind = token_kind
        self.body_limit = body_limit
        self.browser = browser  # a page: the session cookie is the credential, forms its body

    async def admit(self, request: HTTPConnection, services: Services) -> Access:
        """Authenticates the caller and authorizes the declared actions (steps 3-5 of the
        :func:`prelude`); a declaration of another API (the Velerian facade's) overrides it."""
        return await _authorize(request, services, self)

    def __repr__(self) -> str:
        names = ", ".join(
            str(check.action) + (f"@{check.path}" if check.path else "") for check in self.checks
        )
        page = ", page" if self.browser else ""
        return f"Declaration({names or '-'} on {self.scope.value}{page})"


class _PlainDeclaration(Declaration):
    async def __call__(self) -> None:
        return None


class _OrganizationDeclaration(Declaration):
    async def __call__(self, organization: OrgName) -> None:
        return None


class _RepositoryDeclaration(Declaration):
    async def __call__(self, organization: OrgName, repository: RepoName) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Access:
    """Who is calling, and what the declared scope resolved to."""

    principal: Principal | None
    organization: OrganizationRecord | None = None
    repository: RepositoryRecord | None = None
    claims: dict[str, Any] | None = None  # a signed URL's verified claims
    resource: Resource | None = None  # what the declared actions were authorized on
    epoch: int = 0  # the access epoch the caller's rights were judged at
    csrf_token: str | None = None  # a page's: what the forms it renders must send back

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "an unauthenticated route has no caller"
        return self.principal

    @property
    def org(self) -> OrganizationRecord:
        assert self.organization is not None, "the route's scope names no organization"
        return self.organization

    @property
    def repo(self) -> RepositoryRecord:
        assert self.repository is not None, "the route's scope names no repository"
        return self.repository

    @property
    def token(self) -> dict[str, Any]:
        assert self.claims is not None, "the route is not a signed URL"
        return self.claims


def public() -> Any:
    return Depends(_PlainDeclaration((), Scope.PUBLIC))


def signed(action: Action, token_kind: str) -> Any:
    return Depends(_PlainDeclaration((Check(action),), Scope.SIGNED, token_kind))


def account_action(action: Action) -> Any:
    return Depends(_PlainDeclaration((Check(action),), Scope.ACCOUNT))


def organization_action(action: Action, *, body_limit: int = MAX_JSON_BODY) -> Any:
    return Depends(
        _OrganizationDeclaration((Check(action),), Scope.ORGANIZATION, body_limit=body_limit)
    )


def public_page() -> Any:
    """A page anyone may open (signing in and out)."""
    return Depends(_PlainDeclaration((), Scope.PUBLIC, body_limit=MAX_FORM_BODY, browser=True))


def repository_page(*actions: Action) -> Any:
    """A page's actions on its repository, for a signed-in browser."""
    return Depends(
        _RepositoryDeclaration(
            _checks(actions, None), Scope.REPOSITORY, body_limit=MAX_FORM_BODY, browser=True
        )
    )


def _checks(actions: tuple[Action | Check, ...], path: str | None) -> tuple[Check, ...]:
    return tuple(item if isinstance(item, Check) else Check(item, path) for item in actions)


def repository_action(
    *actions: Action | Check, path: str | None = None, body_limit: int = MAX_JSON_BODY
) -> Any:
    """The route's actions on its repository; ``path`` names where the object path of each
    plain action comes from (see :class:`Check`); ``body_limit`` bounds its JSON body."""
    return Depends(
        _RepositoryDeclaration(_checks(actions, path), Scope.REPOSITORY, body_limit=body_limit)
    )


def _declared(dependencies: Sequence[Any]) -> Declaration | None:
    for dependency in dependencies:
        if isinstance(dependency, DependsParam) and isinstance(dependency.dependency, Declaration):
            return dependency.dependency
    return None


def declaration_of(route: APIRoute) -> Declaration | None:
    """The declaration a route was registered with, if any."""
    return _declared(route.dependencies)


def walk_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route an app serves, including those of included routers (which newer FastAPI
    versions keep as one entry that holds the router) and of mounted applications (the
    Velerian facade under ``/api/v2``)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from walk_routes(router.routes)
        elif isinstance(route, Mount):
            yield from walk_routes(route.routes)
        else:
            yield route


# --- the prelude ------------------------------------------------------------------------------

_STATE = "access"


def access_of(request: HTTPConnection) -> Access:
    access: Access | None = request.scope.get("state", {}).get(_STATE)
    if access is None:
        raise RuntimeError("the route declares no action: the prelude never ran")
    return access


async def _current_access(request: HTTPConnection) -> Access:
    """:func:`access_of` as a dependency: a coroutine, since FastAPI runs a plain function
    dependency in a worker thread, a hop per request."""
    return access_of(request)


AccessDep = Annotated[Access, Depends(_current_access)]


MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def prelude(request: HTTPConnection, declaration: Declaration) -> Access:
    """Everything a request passes before its handler runs; see the module docstring."""
    client = request.scope.get("client")
    serving(RequestFacts(ensure_request_id(request.scope), client[0] if client else ""))
    check_query_encoding(request.scope["query_string"])
    services: Services = request.app.state.services
    scope = declaration.scope
    if scope is Scope.PUBLIC:
        access = Access(None)
    elif scope is Scope.SIGNED:
        assert declaration.token_kind is not None and isinstance(request, Request)
        access = Access(None, claims=verify_token(request, services, declaration.token_kind))
    else:
        access = await declaration.admit(request, services)
    request.scope["state"][_STATE] = access
    return access


async def _authorize(
    request: HTTPConnection, services: Services, declaration: Declaration
) -> Access:
    csrf_token: str | None = None
    if declaration.browser:
        session = await authenticate_browser(request, services)
        authenticated, csrf_token = session.authenticated, session.csrf_token
    else:
        authenticated = await authenticate(request, services)
    principal, epoch = authenticated.principal, authenticated.epoch
    if declaration.scope is Scope.ACCOUNT:
        resource = Resource()
    else:
        params = request.path_params
        org = await services.identity.organization(params["organization"])
        repo_name = params["repository"] if declaration.scope is Scope.REPOSITORY else None
        resource = Resource(org, repo_name)
    parameters: dict[str, str] | None = None
    for check in declaration.checks:
        target = resource
        if check.path is not None:
            if check.in_body or check.in_stream:
                # Judged after the body is read (authorize_body) or item by item; a
                # non-member is refused now, before the repository is looked up.
                await _check_member(services, principal, check.action, resource, epoch)
                continue
            if parameters is None:
                parameters = _query_of(request)
            value = parameters.get(check.path.removeprefix("query:"))
            if value:
                target = resource.at(value)
        await check_action(services, principal, check.action, target, epoch)
    if request.scope["type"] == "websocket":
        # A session in a sandbox: recorded as it opens, by the replica it reached first (one
        # that another forwarded to it is not recorded twice).
        if not services.forwarder.forwarded(request):
            await services.audit.record(
                _audit_event(request, declaration, principal, resource, parameters)
            )
    elif request.scope.get("method") in MUTATING:
        journal.hold(_audit_event(request, declaration, principal, resource, parameters))
    if resource.organization is None:
        return Access(principal, epoch=epoch, csrf_token=csrf_token)
    record = None
    if resource.repository is not None:
        record = await services.repositories.get(resource.organization, resource.repository)
    return Access(
        principal,
        resource.organization,
        record,
        resource=resource,
        epoch=epoch,
        csrf_token=csrf_token,
    )


def _audit_event(
    request: HTTPConnection,
    declaration: Declaration,
    principal: Principal,
    resource: Resource,
    parameters: dict[str, str] | None,
) -> AuditEvent:
    """The audit entry of a request that may change state: written by the request's first
    write transaction, if it has one (:mod:`lamina_server.governance.audit`); a websocket's is
    written as it opens. It records the
    last declared action (the write, when a route also reads), on the most specific thing the
    request names: the last of its path's parameters (``sandbox_id``, ``agent_name``…), else the object path its query names, else the
    repository or organization."""
    kind, ident = subject_of(resource)
    for check in declaration.checks:
        if check.path is not None and parameters is not None:
            value = parameters.get(check.path.partition(":")[2])
            if value:
                kind, ident = "object", value
    for name, value in request.path_params.items():
        if name not in ("organization", "repository"):
            kind, ident = name.removesuffix("_id").removesuffix("_name").removesuffix("_key"), value
    organization = resource.organization
    return AuditEvent.of(
        principal,
        organization_id=organization.id if organization is not None else None,
        action=str(declaration.actions[-1]) if declaration.actions else "",
        resource=str(resource),
        resource_kind=kind,
        resource_id=ident,
    )


def _query_of(request: HTTPConnection) -> dict[str, str]:
    if isinstance(request, Request):
        return query(request)
    return dict(request.query_params)


async def check_action(
    services: Services, principal: Principal, action: Action, resource: Resource, epoch: int
) -> None:
    """Asks the authorizer; a denial is audited, then concealed (404) or refused (403)."""
    decision = await services.authorizer.authorize(principal, action, resource, epoch=epoch)
    await _refuse_unless_allowed(services, principal, action, resource, decision)


async def _check_member(
    services: Services, principal: Principal, action: Action, resource: Resource, epoch: int
) -> None:
    """A non-member of the resource's organization is refused ``action`` as the authorizer
    would refuse it (concealed), before anything of the organization is looked up."""
    if resource.organization is None:
        return
    decision = await services.authorizer.membership(principal, resource.organization, epoch)
    await _refuse_unless_allowed(services, principal, action, resource, decision)


async def _refuse_unless_allowed(
    services: Services, principal: Principal, action: Action, resource: Resource, decision: Decision
) -> None:
    if decision.allowed:
        return
    await services.audit.denied(principal, action, resource, decision.reason)
    if decision.conceal and resource.organization is not None:
        raise not_found(
            f"organization {resource.organization.name!r} not found", "organization_not_found"
        )
    raise forbidden(f"{action} on {resource} is not allowed: {decision.reason}")


async def authorize_also(access: Access, services: Services, action: Action) -> None:
    """A further action a request needs that only its body tells (e.g. a sandbox that runs as
    an agent needs ``ManageAgents``): asked of the same authorizer, audited and refused as the
    prelude does, on the request's organization."""
    assert access.resource is not None, "the route's scope names an organization"
    await check_action(
        services, access.caller, action, Resource(access.resource.organization), access.epoch
    )


async def authorize_streamed(request: Request, action: Action, path: str) -> None:
    """A path only the streamed body tells (a route declared ``at(action, "stream:...")``),
    asked of the same authorizer as the prelude asks about a query path, audited and refused
    (403, or 404 where the caller may not learn the organization exists) the same way."""
    access = access_of(request)
    assert access.resource is not None, "a streamed-path action is declared on a repository"
    services: Services = request.app.state.services
    await check_action(services, access.caller, action, access.resource.at(path), access.epoch)


async def authorize_body(request: Request, declaration: Declaration, body: bytes) -> None:
    """The body-path checks of a declaration, once its (bounded) body has been read: each
    path the named field holds (a string, or a list of strings) is authorized as the prelude
    authorizes a query path. A body that is not a JSON object is left to the route's own
    validation, which refuses it before the handler runs."""
    try:
        document = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return
    if not isinstance(document, dict):
        return
    access = access_of(request)
    assert access.resource is not None, "a body-path action is declared on a repository"
    services: Services = request.app.state.services
    for check in declaration.body_checks:
        assert check.path is not None
        value = document.get(check.path.removeprefix("body:"))
        paths = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for path in dict.fromkeys(item for item in paths if isinstance(item, str) and item):
            await check_action(
                services, access.caller, check.action, access.resource.at(path), access.epoch
            )


# --- routes -----------------------------------------------------------------------------------


class LaminaRoute(APIRoute):
    """A FastAPI route whose handler runs the :func:`prelude` of its declaration first, then
    lets FastAPI read (a bounded) body and solve the parameters. A route without a
    declaration is refused when it is registered."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        # Known before the base class builds the handler, which runs the prelude.
        declaration = _declared(options.get("dependencies") or ())
        if declaration is None:
            raise TypeError(f"route {path} declares no action (dependencies=[...])")
        self.declaration = declaration
        super().__init__(path, endpoint, **options)
        if declaration.body_checks and self.body_field is None:
            raise TypeError(f"route {path} declares a body path but reads no body")
        if declaration.browser and self.body_field is not None:
            raise TypeError(f"page {path} reads its form as PageForm, not as a body model")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        declaration = self.declaration
        reads_body = self.body_field is not None
        body_limit = declaration.body_limit
        posts_form = declaration.browser and "POST" in (self.methods or ())

        async def handler(request: Request) -> Response:
            access = await prelude(request, declaration)
            if posts_form and request.method == "POST":
                body = await read_body(request, body_limit)
                await check_form(request, access, declaration, body)
            elif reads_body:
                body = await read_body(request, body_limit)
                if declaration.body_checks:
                    await authorize_body(request, declaration, body)
                request = replaying(request, body)
            return await handle(request)

        return handler


# --- websockets -------------------------------------------------------------------------------


class _SocketDeclaration(Declaration):
    """A websocket route's declaration. FastAPI solves a websocket route's dependencies before
    the handshake is accepted, so this one runs the :func:`prelude` itself: a refusal raises,
    and the app's error handlers answer the upgrade request with the envelope, as for any
    route."""

    async def __call__(
        self, websocket: WebSocket, organization: OrgName, repository: RepoName
    ) -> None:
        await prelude(websocket, self)


def repository_socket(*actions: Action) -> Any:
    return Depends(_SocketDeclaration(_checks(actions, None), Scope.REPOSITORY))


def refuse_undeclared_sockets(routes: Sequence[BaseRoute]) -> None:
    """A websocket route without a :func:`repository_socket` declaration is refused, as
    :class:`LaminaRoute` refuses an HTTP route without one."""
    for route in walk_routes(routes):
        if isinstance(route, APIWebSocketRoute) and not isinstance(
            _declared(route.dependencies), _SocketDeclaration
        ):
            raise TypeError(f"websocket route {route.path} declares no action")
