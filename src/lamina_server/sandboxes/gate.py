"""A sandbox reaches only what the principal it acts as may reach from outside.

A sandbox acts as its ``run_as`` principal when it has one, else as its creator. Its mount
and its changes reach the repository without requests of their own, so they are asked of the
same :class:`~lamina_server.authz.Authorizer` that judges requests:

- before it starts, ``GetObject`` on every object it would see under its ``path_prefix``
  (at once when a policy allows every path; else object by object);
- before its changes land, ``PutObject`` for each new or changed file and ``DeleteObject`` for
  each removed one.

One refusal fails the sandbox, or the landing, whole (``failed/policy_violation``, naming what
was refused).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from lamina_server.authz import Action, Authorizer, Resource
from lamina_server.authz.policy import Target, allows_every_path, evaluate
from lamina_server.identity import OrganizationRecord
from lamina_server.identity.tables import organizations
from lamina_server.principals import Principal
from lamina_server.repositories.tables import repositories
from lamina_server.sandboxes.models import SandboxRecord
from lamina_server.storage.db import Database


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a sandbox acts as."""

    type: str  # "user" | "agent" | "role"
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision the gate took (what a sandbox's evidence lists)."""

    action: str
    resource: str
    allowed: bool
    reason: str

    @property
    def refusal(self) -> str:
        """The message a request refused the same way would get."""
        return f"{self.action} on {self.resource} is not allowed: {self.reason}"


def acting_as(record: SandboxRecord) -> Actor:
    """The principal a sandbox acts as: its ``run_as`` one, else its creator."""
    run_as = record.request.run_as
    if run_as is not None:
        return Actor(run_as.type, run_as.id, run_as.name or f"{run_as.type} {run_as.id}")
    return Actor(record.created_by_type, record.created_by, record.created_by_name)


class PolicyGate:
    """Judges a sandbox's changes as the principal it acts as."""

    def __init__(self, db: Database, authorizer: Authorizer) -> None:
        self._db = db
        self._authorizer = authorizer
        self._places: dict[str, tuple[OrganizationRecord, str]] = {}  # ids never change

    async def _place(self, repository_id: str) -> tuple[OrganizationRecord, str]:
        place = self._places.get(repository_id)
        if place is None:
            query = sa.select(organizations, repositories.c.name.label("repository")).join(
                repositories, repositories.c.organization_id == organizations.c.id
            )
            async with self._db.connect() as conn:
                row = (await conn.execute(query.where(repositories.c.id == repository_id))).one()
            org = OrganizationRecord(row.id, row.name, row.display_name, row.created_at)
            place = self._places[repository_id] = (org, row.repository)
        return place

    def _principal(self, actor: Actor, org: OrganizationRecord) -> Principal:
        return Principal(actor.type, actor.id, actor.name, None if actor.type == "user" else org.id)

    async def may_read(
        self,
        actor: Actor,
        repository_id: str,
        prefix: str,
        paths: Callable[[], Awaitable[Iterable[str]]],
    ) -> Verdict:
        """Whether the actor may see everything under ``prefix``: at once when a policy allows
        every path, else each of what ``paths`` lists (the first refusal decides)."""
        org, repository = await self._place(repository_id)
        action = str(Action.GET_OBJECT)
        whole = f"{org.name}/{repository}/{prefix}*"
        policies = await self._authorizer.policies_of(self._principal(actor, org), org)
        if policies is None:
            return Verdict(
                action, whole, False, f"{actor.name} is not a member of organization {org.name!r}"
            )
        if allows_every_path(policies, Action.GET_OBJECT, Target(org.name, repository)):
            return Verdict(action, whole, True, "allowed")
        for path in await paths():
            verdict = evaluate(policies, Action.GET_OBJECT, Target(org.name, repository, path))
            if not verdict.allowed:
                return Verdict(action, f"{org.name}/{repository}/{path}", False, verdict.reason)
        return Verdict(action, whole, True, "allowed, object by object")

    async def judge(
        self, actor: Actor, repository_id: str, changes: Iterable[tuple[Action, str]]
    ) -> list[Verdict]:
        """The actor's verdict on each of ``changes`` (action, object path)."""
        org, repository = await self._place(repository_id)
        principal = self._principal(actor, org)
        verdicts = []
        for action, path in changes:
            resource = Resource(org, repository, path)
            decision = await self._authorizer.authorize(principal, action, resource)
            verdicts.append(Verdict(str(action), str(resource), decision.allowed, decision.reason))
        return verdicts
