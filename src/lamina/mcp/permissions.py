"""``explain_permission``: may this agent perform an action on a repository (or a path in it),
and what decides it. The answer says how it was reached (``basis``):

- ``"effective_policies"``: the agent's effective policies in the organization, evaluated by
  the SDK's evaluator of the policy language (:meth:`lamina.AsyncClient.explain`), naming the
  deciding policy and line (an inline policy too). Reading them needs ``ManagePolicies``,
  which few agents have; without it (or with a Rego policy among them):
- ``"server"``: the server's own authorizer answers (``GET /auth/permission``), nothing tried;
  its ``reason`` says what decided, without a line number.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from lamina._errors import ForbiddenError, PolicySyntaxError
from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.params import Repository


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
    and why. Returns ``allowed``, ``reason``, ``basis`` (``"effective_policies"``: the agent's
    policies were read and evaluated, and ``policy_name``, ``line`` and ``rule`` name the
    deciding line; ``"server"``: the server's authorizer answered), ``action`` and
    ``resource``."""
    client = await lamina_client(ctx)
    resource = f"{repository}/{path}" if path else repository
    try:
        explanation = await client.explain(action, resource)
    except (ForbiddenError, PolicySyntaxError):
        answer = await client.auth.permission(action, resource)
        return {
            "action": answer.action,
            "resource": answer.resource,
            "allowed": answer.allowed,
            "basis": "server",
            "reason": answer.reason,
        }
    return {
        "action": action,
        "resource": resource,
        "allowed": explanation.allowed,
        "basis": "effective_policies",
        "reason": explanation.reason,
        "policy_id": explanation.policy_id,
        "policy_name": explanation.policy_name,
        "line": explanation.line,
        "rule": explanation.rule,
    }
