"""The one check: may this principal perform this action on this resource?

1. Outside an organization, a user may create and list its organizations; an agent or a role
   only lists its own organization, reads who it is and manages its own S3 credentials
   (:data:`MACHINE_ACCOUNT_ACTIONS`).
2. Inside an organization, membership gates: a non-member is told nothing about the
   organization (it may not learn that it exists) — the denial is concealed as a 404. An agent
   or a role is a member of its own organization only.
3. A member is judged by its effective policies — those attached to it directly and to every
   group it is in, transitively — evaluated by the policy language
   (:func:`lamina_server.authz.policy.evaluate`): an explicit deny beats any allow, and what
   no policy allows is denied.

This runs on every request, the upload path included, so it costs one query on a warm cache:
the compiled effective policies of each principal are cached with the access epoch they were
read at (:mod:`lamina_server.identity.grants`), and reused while the epoch is unchanged. They are
cached as a :class:`~lamina_server.authz.policy.PolicySet`, which gathers each action's ``Deny``
statements once, so that a batched upload's objects, each judged on its own path, cost little
more than one. Every
change to groups, memberships, policies or attachments bumps the epoch in its own transaction,
so the next request of any process sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lamina_server.authz.actions import Action
from lamina_server.authz.builtins import BUILTIN_POLICIES
from lamina_server.authz.policy import Policy, PolicySet, Target, compile_policy, evaluate
from lamina_server.authz.records import PolicyRecord
from lamina_server.authz.rego import compile_rego
from lamina_server.authz.store import AccessStore
from lamina_server.identity import Identity, OrganizationRecord
from lamina_server.principals import Principal


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is performed on: nothing (the caller's own organizations), an
    organization, a repository of one (by name: it is resolved after the check, so that a
    caller who may not see it cannot learn whether it exists), or an object path in one."""

    organization: OrganizationRecord | None = None
    repository: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.organization is None:
            return "*"
        if self.repository is None:
            return self.organization.name
        if self.path is None:
            return f"{self.organization.name}/{self.repository}"
        return f"{self.organization.name}/{self.repository}/{self.path}"

    def at(self, path: str) -> Resource:
        return Resource(self.organization, self.repository, path)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    # A denied caller may not learn that the resource exists: answer as if it did not.
    conceal: bool = False


ALLOWED = Decision(True, "allowed")

_MAX_CACHED = 4096

# What an agent or a role may do outside of an organization's routes.
MACHINE_ACCOUNT_ACTIONS = frozenset({Action.LIST_ORGANIZATIONS, Action.MANAGE_S3_CREDENTIALS})


class Authorizer:
    def __init__(self, identity: Identity, store: AccessStore) -> None:
        self._identity = identity
        self._store = store
        # (organization id, principal type, principal id) -> (epoch, compiled policies)
        self._effective: dict[tuple[str, str, str], tuple[int, PolicySet]] = {}
        # (policy id, updated at) -> compiled: a policy is compiled once per version
        self._compiled: dict[tuple[str, datetime], Policy] = {}
        # (organization id, user id) -> (epoch, is a member)
        self._members: dict[tuple[str, str], tuple[int, bool]] = {}

    async def authorize(
        self,
        principal: Principal,
        action: Action,
        resource: Resource,
        *,
        epoch: int | None = None,
    ) -> Decision:
        """``epoch``: the access epoch read when the caller was authenticated (read here
        when not given); what is cached is used only while it is unchanged."""
        org = resource.organization
        if org is None:
            if principal.type == "user" or action in MACHINE_ACCOUNT_ACTIONS:
                return ALLOWED
            return Decision(False, f"only a user may perform {action}")
        if epoch is None:
            epoch = await self._store.epoch()
        membership = await self.membership(principal, org, epoch)
        if not membership.allowed:
            return membership
        policies = await self.policies(org, principal, epoch)
        verdict = evaluate(policies, action, Target(org.name, resource.repository, resource.path))
        return Decision(verdict.allowed, verdict.reason)

    async def membership(
        self, principal: Principal, org: OrganizationRecord, epoch: int
    ) -> Decision:
        """Step 2 alone: allowed for a member of ``org``, else a denial to conceal."""
        if await self._is_member(org, principal, epoch):
            return ALLOWED
        return Decision(False, f"not a member of organization {org.name!r}", conceal=True)

    async def policies_of(self, principal: Principal, org: OrganizationRecord) -> PolicySet | None:
        """The principal's effective policies in ``org`` (None: it is not a member), for
        judging many targets at once."""
        epoch = await self._store.epoch()
        if not await self._is_member(org, principal, epoch):
            return None
        return await self.policies(org, principal, epoch)

    async def _is_member(self, org: OrganizationRecord, principal: Principal, epoch: int) -> bool:
        if principal.type != "user":
            return principal.organization_id == org.id
        key = (org.id, principal.id)
        cached = self._members.get(key)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        member = await self._identity.is_member(org.id, principal)
        if len(self._members) >= _MAX_CACHED:
            self._members.clear()
        self._members[key] = (epoch, member)  # joining and leaving both bump the epoch
        return member

    async def policies(
        self, org: OrganizationRecord, principal: Principal, epoch: int
    ) -> PolicySet:
        """The principal's compiled effective policies in ``org``, from the cache while the
        access epoch is the one they were read at."""
        key = (org.id, principal.type, principal.id)
        cached = self._effective.get(key)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        effective = await self._store.effective_policies(org, (principal.type, principal.id))
        compiled = PolicySet(self._compile(item.policy) for item in effective)
        if len(self._effective) >= _MAX_CACHED:
            self._effective.clear()
        # Stored with the epoch read before the policies: a change that lands in between
        # leaves the entry already stale, never wrongly fresh.
        self._effective[key] = (epoch, compiled)
        return compiled

    def _compile(self, policy: PolicyRecord) -> Policy:
        if policy.is_builtin:
            return BUILTIN_POLICIES[policy.name]
        key = (policy.id, policy.updated_at)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= _MAX_CACHED:
                self._compiled.clear()
            compiled = (
                compile_rego(policy.policy_text, name=policy.name)
                if policy.language == "rego"
                else compile_policy(policy.policy_text, name=policy.name)
            )
            self._compiled[key] = compiled
        return compiled
