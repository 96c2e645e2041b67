"""Policies: texts in the policy DSL, attached to users, groups, roles and agents; and
:func:`explain`, which answers "may I?" from the caller's effective policies without trying."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, segment
from lamina._converter import structure
from lamina._errors import PolicySyntaxError
from lamina._policy import Resource, SourcePolicy, evaluate
from lamina.models.organizations import ResultList
from lamina.models.policies import (
    Attachment,
    EffectivePolicy,
    Explanation,
    GeneratedPolicy,
    PolicyData,
    PolicyDetail,
    ValidationResult,
)

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncPolicy:
    """A policy. One from ``get()`` carries its text and attachments; one from ``list()``
    carries ``attachment_count`` and no text until refreshed."""

    def __init__(
        self,
        client: AsyncClient,
        org: str,
        data: PolicyData,
        attachments: builtins.list[Attachment] | None = None,
    ) -> None:
        self._client = client
        self._org = org
        self._data = data
        self._attachments = list(attachments or ())
        self._path = f"{organization_path(org)}/policies/{segment(data.id)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data.name!r})"

    @property
    def data(self) -> PolicyData:
        return self._data

    @property
    def id(self) -> str:
        return self._data.id

    @property
    def name(self) -> str:
        return self._data.name

    @property
    def description(self) -> str:
        return self._data.description

    @property
    def policy_text(self) -> str:
        return self._data.policy_text

    @property
    def is_builtin(self) -> bool:
        return self._data.is_builtin

    @property
    def updated_at(self) -> datetime | None:
        return self._data.updated_at

    @property
    def attachments(self) -> builtins.list[Attachment]:
        """Where the policy is attached, as last loaded."""
        return list(self._attachments)

    async def refresh(self) -> AsyncPolicy:
        """Load the policy, its text and attachments again; returns the policy."""
        data = await self._client.request_json("GET", self._path)
        detail = structure(self._client.converter, data, PolicyDetail)
        self._data, self._attachments = detail.policy, detail.attachments
        return self

    async def update(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        policy_text: str | None = None,
    ) -> AsyncPolicy:
        """Change the given fields (the server validates a new text); returns the policy."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        if policy_text is not None:
            body["policy_text"] = policy_text
        data = await self._client.request_json("PUT", self._path, json=body)
        self._data = structure(self._client.converter, data, PolicyData)
        return self

    async def delete(self) -> None:
        """Delete the policy (built-in policies cannot be deleted)."""
        await self._client.request("DELETE", self._path)

    async def attach(self, *, principal_type: str, principal_id: str) -> None:
        """Attach the policy to a user, group, role or agent (``principal_type``)."""
        await self._client.request(
            "POST",
            f"{self._path}/attachments",
            json={"principal_type": principal_type, "principal_id": principal_id},
        )

    async def detach(self, *, principal_type: str, principal_id: str) -> None:
        """Detach the policy from a principal."""
        await self._client.request(
            "DELETE",
            f"{self._path}/attachments",
            params={"principal_type": principal_type, "principal_id": principal_id},
        )


class AsyncPolicies:
    """The policies of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._path = f"{organization_path(org)}/policies"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def _policy(self, policy_id: str) -> AsyncPolicy:
        return AsyncPolicy(self._client, self._org, PolicyData(id=policy_id, name=""))

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncPolicy]:
        """The organization's policies, built-in ones included (``amount`` caps the total)."""
        return self._client.paginate(
            self._path, PolicyData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncPolicy(self._client, self._org, data))

    async def get(self, policy_id: str) -> AsyncPolicy:
        """The policy ``policy_id``, with its text and attachments."""
        return await self._policy(policy_id).refresh()

    async def create(
        self, name: str, policy_text: str, *, description: str | None = None
    ) -> AsyncPolicy:
        """Create a policy (the server validates ``policy_text``:
        :class:`~lamina.BadRequestError` names the problem)."""
        body: dict[str, Any] = {"name": name, "policy_text": policy_text}
        if description is not None:
            body["description"] = description
        data = await self._client.request_json("POST", self._path, json=body)
        return AsyncPolicy(
            self._client, self._org, structure(self._client.converter, data, PolicyData)
        )

    async def delete(self, policy_id: str) -> None:
        """Delete the policy ``policy_id``."""
        await self._policy(policy_id).delete()

    async def validate(self, policy_text: str) -> ValidationResult:
        """Check a policy text without saving it: ``valid``, and ``errors`` with line and
        column."""
        data = await self._client.request_json(
            "POST", f"{self._path}:validate", json={"policy_text": policy_text}
        )
        return structure(self._client.converter, data, ValidationResult)

    async def generate(self, prompt: str) -> str:
        """A policy text drafted from a description in words (at most 4000 characters)."""
        data = await self._client.request_json(
            "POST", f"{self._path}:generate", json={"prompt": prompt}
        )
        return structure(self._client.converter, data, GeneratedPolicy).policy_text

    async def attach(self, policy_id: str, principal_type: str, principal_id: str) -> None:
        """Attach the policy ``policy_id`` to a user, group, role or agent."""
        await self._policy(policy_id).attach(
            principal_type=principal_type, principal_id=principal_id
        )

    async def detach(self, policy_id: str, principal_type: str, principal_id: str) -> None:
        """Detach the policy ``policy_id`` from a principal."""
        await self._policy(policy_id).detach(
            principal_type=principal_type, principal_id=principal_id
        )

    async def attachments(self) -> builtins.list[Attachment]:
        """Every policy attachment in the organization."""
        data = await self._client.request_json("GET", f"{organization_path(self._org)}/attachments")
        return structure(self._client.converter, data, ResultList[Attachment]).results

    async def effective(
        self,
        *,
        principal_type: str | None = None,
        principal_id: str | None = None,
        user_id: str | None = None,
    ) -> builtins.list[EffectivePolicy]:
        """The policies that apply to a principal (directly, through groups, or inline)."""
        data = await self._client.request_json(
            "GET",
            f"{organization_path(self._org)}/effective-policies",
            params={
                "user_id": user_id,
                "principal_type": principal_type,
                "principal_id": principal_id,
            },
        )
        return structure(self._client.converter, data, ResultList[EffectivePolicy]).results


async def explain(client: AsyncClient, action: str, resource: str) -> Explanation:
    """Whether the caller may perform ``action`` on ``resource`` (``"org"``, ``"org/repo"`` or
    ``"org/repo/path"``), answered from the caller's effective policies in that
    organization (``/auth/me`` for who the caller is: a user, agent or role;
    ``effective-policies``; then each policy's text) and the SDK's evaluator of the policy
    DSL; nothing is tried."""
    target = Resource.parse(resource)
    caller = (await client.auth.me()).caller
    policies = AsyncPolicies(client, target.organization)
    effective = await policies.effective(principal_type=caller.type, principal_id=caller.id)
    sources = []
    for entry in effective:
        policy = await policies.get(entry.policy_id)
        if policy.data.language != "dsl":
            raise PolicySyntaxError(
                f"a {policy.data.language} policy: the SDK evaluates only the policy language",
                line=1,
                column=1,
                policy=policy.name,
            )
        sources.append(SourcePolicy(policy.id, policy.name, policy.policy_text))
    return evaluate(sources, action, target)
