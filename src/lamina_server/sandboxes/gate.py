"""What a sandbox may land is what the principal it acts as may write from outside.

A sandbox acts as its ``run_as`` principal when it has one, else as its creator. Its changes
reach the repository without a request of their own, so before they land each one is asked of
the same :class:`~lamina_server.authz.Authorizer` that judges requests: ``PutObject`` for a
new or changed file, ``DeleteObject`` for a removed one, on its path. One refusal fails the
landing whole (``failed/policy_violation``, naming what was refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from lamina_server.authz import Action, Authorizer, Resource
from lamina_server.identity import OrganizationRecord
from lamina_server.identity.tables import organizations
from lamina_server.principals import Principal
from lamina_server.repositories.tables import repositories
from lamina_server.storage.db import Database


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a sandbox acts as."""

    type: str  # "user" | "agent" | "role"
    id: str
    name: str


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

    async def refused(
        self, actor: Actor, repository_id: str, changes: Iterable[tuple[Action, str]]
    ) -> list[str]:
        """What of ``changes`` (action, object path) the actor may not do, each as the
        message a request would get."""
        org, repository = await self._place(repository_id)
        principal = Principal(
            actor.type, actor.id, actor.name, None if actor.type == "user" else org.id
        )
        refusals = []
        for action, path in changes:
            resource = Resource(org, repository, path)
            decision = await self._authorizer.authorize(principal, action, resource)
            if not decision.allowed:
                refusals.append(f"{action} on {resource} is not allowed: {decision.reason}")
        return refusals
