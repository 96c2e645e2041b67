"""The facade's prelude: a Velerian key, its scope, and the Lamina action a route maps to.

Every ``/api/v2`` route declares, where it is registered, the key scope it needs and the Lamina
action(s) it performs, and on what (:class:`On`)::

    @router.post("/abps/{abp_id}/deploy", dependencies=[velerian("write", Action.X, on=On.ABP)])

and the one prelude of :mod:`lamina_server.api.access` (its :class:`~.api.access.LaminaRoute`,
its request id, query check and bounded body) runs :meth:`VelerianDeclaration.admit`, which

1. authenticates the ``vk_live_`` key (:mod:`.keys`; 401 when unknown or revoked) — or a
   Lamina API key (any principal's: every scope, its rights alone decide; its organization is
   the ``X-Lamina-Organization`` header's, else its only one), which is how Lamina's own SDK
   calls the facade; the keys' own routes (:attr:`On.ACCOUNT`) take a Lamina user key only;
2. refuses a key without the declared scope (403, audited as a denial);
3. resolves what the route acts on in the key's organization (an ABP, a run, an approval: 404
   when the organization has none by that id) and asks :meth:`Authorizer.authorize` about
   each declared action on it, as the key's user, at the access epoch read with the key —
   the same check, audit of denials and 403/404 as every Lamina route (:func:`check_action`).
   A route that declares ``verdict=True`` (invoke) takes a refusal as the run's verdict
   instead of answering 403: it is audited, and the handler answers it (:attr:`Grant.refusal`);
4. holds the audit entry of a mutating request under the facade's own action name
   (``abp.invoke``…), written by the request's first write transaction.

A route on a repository that only its body names (:attr:`On.BODY`, creating an ABP) has its
actions checked by :func:`admit_repository` once the body is read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path
from starlette.requests import HTTPConnection

from lamina_server.api.access import (
    MUTATING,
    Access,
    Check,
    Declaration,
    Scope,
    access_of,
    check_action,
)
from lamina_server.api.authentication import authenticate
from lamina_server.api.bodies import MAX_JSON_BODY
from lamina_server.api.deps import Services
from lamina_server.api.errors import forbidden, unauthorized
from lamina_server.authz import Action, Resource
from lamina_server.governance.audit import AuditEvent
from lamina_server.identity import OrganizationRecord
from lamina_server.principals import Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage import journal
from lamina_server.velerian.errors import Invalid, NotFound
from lamina_server.velerian.keys import KEY_PREFIX, KeyGrant, grants

_STATE = "velerian"


class On(enum.Enum):
    """What a route acts on, and so what the prelude resolves and authorizes."""

    ACCOUNT = "account"  # the calling user's own keys (a Lamina user key, not a Velerian one)
    TENANT = "tenant"  # the key's organization
    BODY = "body"  # a repository of it the request body names (admit_repository)
    ABP = "abp"  # the ABP {abp_id}, on its repository
    RUN = "run"  # the invocation {run_id}, on its ABP's repository
    APPROVAL = "approval"  # the approval {approval_id}, on its repository


@dataclass(frozen=True, slots=True)
class Grant:
    """What the prelude resolved beyond :class:`~lamina_server.api.access.Access`."""

    key_id: str
    actions: tuple[Action, ...]  # the route's declared actions
    target: Any = None  # the AbpRecord, Invocation or ApprovalRecord the path names
    refusal: str | None = None  # a verdict route's first denied action, and why


class VelerianDeclaration(Declaration):
    """A facade route's key scope, Lamina actions, target and audit action name."""

    def __init__(
        self,
        key_scope: str | None,
        actions: tuple[Action, ...],
        on: On,
        audit_action: str,
        *,
        verdict: bool = False,
    ) -> None:
        scope = Scope.ACCOUNT if on is On.ACCOUNT else Scope.TENANT
        super().__init__(tuple(Check(action) for action in actions), scope, None, MAX_JSON_BODY)
        self.key_scope = key_scope
        self.on = on
        self.audit_action = audit_action
        self.verdict = verdict

    async def __call__(self) -> None:
        """As a dependency it only stands where the route is (the prelude does the work)."""
        return None

    def __repr__(self) -> str:
        actions = ", ".join(str(action) for action in self.actions)
        return f"VelerianDeclaration({self.key_scope} → {actions} on {self.on.value})"

    async def admit(self, request: HTTPConnection, services: Services) -> Access:
        if self.on is On.ACCOUNT:
            return await self._admit_user(request, services)
        token = _bearer(request)
        if token.startswith(KEY_PREFIX):
            grant = await services.velerian.keys.authenticate(token)
            if grant is None:
                raise unauthorized("invalid or revoked API key (expected 'Bearer vk_live_…')")
        else:
            grant = await _lamina_grant(request, services)
        principal, epoch = grant.principal, grant.epoch
        org = await services.identity.organization(grant.organization)
        if self.key_scope is not None and not grants(grant.scopes, self.key_scope):
            reason = (
                f"the key lacks the {self.key_scope!r} scope (it has: {', '.join(grant.scopes)})"
            )
            await services.audit.denied(principal, f"scope:{self.key_scope}", Resource(org), reason)
            raise forbidden(reason)
        target, repo_name, kind, ident = await self._target(request, services, org)
        resource = Resource(org, repo_name)
        refusal: str | None = None
        if self.on is not On.BODY:
            refusal = await self._authorize(services, principal, resource, epoch)
        self._hold(request, principal, org, resource, kind, ident, refusal)
        request.scope["state"][_STATE] = Grant(grant.key_id, self.actions, target, refusal)
        repo = await services.repositories.get(org, repo_name) if repo_name else None
        return Access(principal, org, repo, resource=resource, epoch=epoch)

    async def _admit_user(self, request: HTTPConnection, services: Services) -> Access:
        if _bearer(request).startswith(KEY_PREFIX):
            raise forbidden("Velerian keys are managed with a Lamina user key (tuk-…)")
        authenticated = await authenticate(request, services)
        principal, epoch = authenticated.principal, authenticated.epoch
        for action in self.actions:  # only a user may: agents' and roles' keys are refused
            await check_action(services, principal, action, Resource(), epoch)
        request.scope["state"][_STATE] = Grant("", self.actions)
        if request.scope.get("method") in MUTATING:
            journal.hold(
                AuditEvent.of(
                    principal,
                    organization_id=None,  # the key's, once the handler knows it (retarget)
                    action=self.audit_action,
                    resource="*",
                    resource_kind="api_key",
                    resource_id=str(request.path_params.get("key_id", "")),
                )
            )
        return Access(principal, epoch=epoch)

    async def _target(
        self, request: HTTPConnection, services: Services, org: OrganizationRecord
    ) -> tuple[Any, str | None, str, str]:
        """The record the path names, its repository's name, and its audit kind and id."""
        params = request.path_params
        velerian = services.velerian
        if self.on is On.ABP:
            abp = await velerian.abps.get(org.id, params["abp_id"])
            return abp, abp.repository_name, "abp", abp.id
        if self.on is On.RUN:
            run = await velerian.runs.get(org.id, params["run_id"])
            return run, run.abp.repository_name, "run", run.id
        if self.on is On.APPROVAL:
            approval = await services.approvals.find(org.id, params["approval_id"])
            repo = await services.repositories.by_id(approval.repository_id)
            return approval, repo.name, "approval", approval.session_id
        return None, None, "organization", org.name

    async def _authorize(
        self, services: Services, principal: Principal, resource: Resource, epoch: int
    ) -> str | None:
        """Checks the declared actions; for a verdict route, the first refusal, audited."""
        for action in self.actions:
            if not self.verdict:
                await check_action(services, principal, action, resource, epoch)
                continue
            decision = await services.authorizer.authorize(principal, action, resource, epoch=epoch)
            if decision.conceal:
                await check_action(services, principal, action, resource, epoch)  # its 404
            if not decision.allowed:
                await services.audit.denied(principal, action, resource, decision.reason)
                return f"{action} on {resource} is not allowed: {decision.reason}"
        return None

    def _hold(
        self,
        request: HTTPConnection,
        principal: Principal,
        org: OrganizationRecord,
        resource: Resource,
        kind: str,
        ident: str,
        refusal: str | None,
    ) -> None:
        if request.scope.get("method") not in MUTATING:
            return
        journal.hold(
            AuditEvent.of(
                principal,
                organization_id=org.id,
                action=self.audit_action,
                resource=str(resource),
                resource_kind=kind,
                resource_id=ident,
                outcome="denied" if refusal else "success",
                details={"reason": refusal} if refusal else None,
            )
        )


ORGANIZATION_HEADER = "x-lamina-organization"


async def _lamina_grant(request: HTTPConnection, services: Services) -> KeyGrant:
    """A Lamina API key as a facade key: every scope (its policies alone decide what it may),
    in the organization the request names, or its only one."""
    authenticated = await authenticate(request, services)
    principal = authenticated.principal
    named = request.headers.get(ORGANIZATION_HEADER)
    organizations = await services.identity.list_organizations(principal)
    if named is not None:
        chosen = [org for org in organizations if org.name == named]
        if not chosen:
            raise NotFound(f"organization {named!r} not found")
    elif len(organizations) == 1:
        chosen = organizations
    else:
        raise Invalid(
            f"{ORGANIZATION_HEADER}: required, since the key's principal is a member of "
            f"{len(organizations)} organizations"
        )
    return KeyGrant("", principal, chosen[0].name, ("write",), authenticated.epoch)


def _bearer(request: HTTPConnection) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing or malformed Authorization header (expected 'Bearer <key>')")
    return token.strip()


def velerian(
    key_scope: str | None,
    *actions: Action,
    on: On,
    audit: str = "",
    verdict: bool = False,
) -> Any:
    """A facade route's declaration (see the module docstring); ``audit`` names the action of
    the entry a mutating route's change is recorded with."""
    return Depends(VelerianDeclaration(key_scope, actions, on, audit, verdict=verdict))


def grant_of(request: HTTPConnection) -> Grant:
    grant: Grant | None = request.scope.get("state", {}).get(_STATE)
    if grant is None:
        raise RuntimeError("the route declares no Velerian access: the prelude never ran")
    return grant


async def _current_grant(request: HTTPConnection) -> Grant:
    return grant_of(request)


GrantDep = Annotated[Grant, Depends(_current_grant)]
AbpId = Annotated[str, Path(description="ABP id")]


async def admit_repository(
    request: HTTPConnection, services: Services, name: str
) -> RepositoryRecord:
    """For a route on :attr:`On.BODY`: its declared actions on the key organization's
    repository ``name`` (checked, audited and refused as the prelude does), then the
    repository."""
    access = access_of(request)
    resource = Resource(access.org, name)
    for action in grant_of(request).actions:
        await check_action(services, access.caller, action, resource, access.epoch)
    return await services.repositories.get(access.org, name)


def retarget(*, organization_id: str, resource: str, resource_id: str | None = None) -> None:
    """Completes the held audit entry of a keys route once the handler knows the key's
    organization (and the key's id, for one it mints)."""
    for event in journal.pending():
        if isinstance(event, AuditEvent):
            event.organization_id = organization_id
            event.resource = resource
            if resource_id is not None:
                event.resource_id = resource_id
