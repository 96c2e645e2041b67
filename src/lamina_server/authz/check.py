"""The one check: may this principal perform this action on this resource?

Today membership decides: any user may create and list organizations, and a member of an
organization may do everything inside it. A non-member is told nothing about the organization
(it may not learn that it exists). An agent or a role is a member of its own organization only,
and outside of it may only list that organization and read who it is
(:data:`MACHINE_ACCOUNT_ACTIONS`): it creates no organizations, keys or invitations of its own.
Policies plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina_server.authz.actions import Action
from lamina_server.identity import Identity, OrganizationRecord
from lamina_server.principals import Principal


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is performed on: nothing (the caller's own organizations), an
    organization, or a repository of one (by name: it is resolved after the check, so that a
    caller who may not see it cannot learn whether it exists)."""

    organization: OrganizationRecord | None = None
    repository: str | None = None

    def __str__(self) -> str:
        if self.organization is None:
            return "*"
        if self.repository is None:
            return self.organization.name
        return f"{self.organization.name}/{self.repository}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    # A denied caller may not learn that the resource exists: answer as if it did not.
    conceal: bool = False


ALLOWED = Decision(True, "allowed")

# What an agent or a role may do outside of an organization's routes.
MACHINE_ACCOUNT_ACTIONS = frozenset({Action.LIST_ORGANIZATIONS})


class Authorizer:
    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def authorize(self, principal: Principal, action: Action, resource: Resource) -> Decision:
        org = resource.organization
        if org is None:
            if principal.type == "user" or action in MACHINE_ACCOUNT_ACTIONS:
                return ALLOWED
            return Decision(False, f"only a user may perform {action}")
        if await self._identity.is_member(org.id, principal):
            return ALLOWED
        return Decision(False, f"not a member of organization {org.name!r}", conceal=True)
