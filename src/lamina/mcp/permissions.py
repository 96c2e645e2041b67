"""``explain_permission``: may this agent perform an action on a repository (or a path in it),
and what decides it.

The reference server has no route that answers "may principal P do action A on resource R,
and which policy decided" (its one check, ``Authorizer.authorize``, runs only inside the
requests it guards). So the answer is built from what the SDK can read, and says how
(``basis``):

- ``"effective_policies"``: the agent's effective policies in the organization, evaluated by
  the SDK's evaluator of the policy language (:meth:`lamina.AsyncClient.explain`), naming the
  deciding policy and line (an inline policy too). Reading them needs ``ManagePolicies``,
  which few agents have.
- ``"probe"``: otherwise, for a read-only action, the tool tries a request that needs that
  action and changes nothing (a listing of one item, a HEAD of the object), and reports the
  server's verdict (its 403 names the reason). No policy or line is named then.
- ``"unknown"``: neither was possible (a write action, without the right to read policies);
  ``allowed`` is ``null`` and ``reason`` says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from lamina._async._client import AsyncClient
from lamina._async.resources.repositories import AsyncRepository
from lamina._errors import ForbiddenError, NotFoundError, PolicySyntaxError
from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import describe, tool_errors
from lamina.mcp.params import Repository


async def _list_objects(repo: AsyncRepository, path: str) -> None:
    async for _ in repo.objects.list(prefix=path or None, amount=1):
        break


async def _get_object(repo: AsyncRepository, path: str) -> None:
    try:
        await repo.objects.head(path)
    except NotFoundError as exc:
        if exc.code != "object_not_found":  # the repository: unknown, or concealed
            raise
        # authorized, and there is no such object


async def _get_repository(repo: AsyncRepository, path: str) -> None:
    await repo.refresh()


async def _list_commits(repo: AsyncRepository, path: str) -> None:
    async for _ in repo.commits.list(amount=1):
        break


async def _list_sandboxes(repo: AsyncRepository, path: str) -> None:
    async for _ in repo.sandboxes.list(amount=1):
        break


#: Read-only actions and a request that needs exactly that action and changes nothing.
PROBES: dict[str, Callable[[AsyncRepository, str], Awaitable[None]]] = {
    "ListObjects": _list_objects,
    "GetObject": _get_object,
    "GetRepository": _get_repository,
    "ListCommits": _list_commits,
    "ListSandboxes": _list_sandboxes,
}


@tool_errors
async def explain_permission(
    repository: Repository,
    action: Annotated[
        str, Field(description="A policy action, e.g. 'GetObject', 'PutObject', 'CommitSession'")
    ],
    ctx: Context[Clients, Any],
    path: Annotated[str, Field(description="A path in the repository ('' : the repository)")] = "",
) -> dict[str, Any]:
    """Whether this agent may perform ``action`` on the repository (or on ``path`` in it),
    and why. Returns ``allowed`` (true, false, or null when it cannot be told), ``reason``,
    ``basis`` (``"effective_policies"``: the agent's policies were read and evaluated, and
    ``policy_name``, ``line`` and ``rule`` name the deciding line; ``"probe"``: a read-only
    request that needs the action was tried; ``"unknown"``), ``action`` and ``resource``."""
    client = await lamina_client(ctx)
    resource = f"{repository}/{path}" if path else repository
    answer: dict[str, Any] = {"action": action, "resource": resource}
    try:
        explanation = await client.explain(action, resource)
    except (ForbiddenError, NotFoundError, PolicySyntaxError) as exc:
        unreadable = describe(exc)
    else:
        return {
            **answer,
            "allowed": explanation.allowed,
            "basis": "effective_policies",
            "reason": explanation.reason,
            "policy_id": explanation.policy_id,
            "policy_name": explanation.policy_name,
            "line": explanation.line,
            "rule": explanation.rule,
        }
    probe = PROBES.get(action)
    if probe is None:
        return {
            **answer,
            "allowed": None,
            "basis": "unknown",
            "reason": (
                "the server has no route that answers whether an agent may perform an action, "
                f"this agent's effective policies could not be read ({unreadable}), and {action} "
                "is not a read-only action that can be tried without changing anything"
            ),
        }
    return {**answer, **await _probe(client, repository, path, probe)}


async def _probe(
    client: AsyncClient,
    repository: str,
    path: str,
    probe: Callable[[AsyncRepository, str], Awaitable[None]],
) -> dict[str, Any]:
    try:
        await probe(client.repository(repository), path)
    except ForbiddenError as exc:
        return {"allowed": False, "basis": "probe", "reason": describe(exc)}
    return {
        "allowed": True,
        "basis": "probe",
        "reason": "the server allowed a read-only request that needs this action",
    }
