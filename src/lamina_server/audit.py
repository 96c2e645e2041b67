"""The audit hook of the request path: what governance records about access decisions.

Every denied request reaches :meth:`AuditHook.denied` from the one authorization seam
(:func:`lamina_server.api.access.prelude`). The embedded default records nothing; the audit log
plugs in here.
"""

from __future__ import annotations

from typing import Protocol

from lamina_server.authz import Action
from lamina_server.principals import Principal


class AuditHook(Protocol):
    async def denied(
        self, principal: Principal, action: Action, resource: str, reason: str
    ) -> None: ...


class NoAudit:
    """Records nothing."""

    async def denied(
        self, principal: Principal, action: Action, resource: str, reason: str
    ) -> None:
        return None
