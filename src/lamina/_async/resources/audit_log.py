"""The audit log of an organization (``org.audit_log``): who did what to which resource, when,
from where, and how it ended. Check a run of entries with :func:`lamina.audit.verify_entries`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina.models.governance import AuditEntry

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment


class AsyncAuditLog:
    """An organization's audit log, oldest entry first."""

    def __init__(self, client: AsyncClient, organization_path: str) -> None:
        self._client = client
        self._path = f"{organization_path}/audit-log"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    def list(
        self,
        *,
        action: str | None = None,
        resource_kind: str | None = None,
        resource_id: str | None = None,
        principal: str | None = None,
        outcome: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[AuditEntry]:
        """The entries matching every given filter: ``action`` (``"CommitSession"``),
        ``resource_kind`` (``"repository"``, ``"session"``...) and ``resource_id``,
        ``principal`` (an id or name), ``outcome`` (``success``, ``denied``,
        ``approval_required``, ``approved``, ``rejected``), at or after ``since`` and before
        ``until`` (``datetime``, naive meaning UTC, or ISO-8601 text). The pager's ``total``
        counts the matching entries."""
        params = {
            "action": action,
            "resource_kind": resource_kind,
            "resource_id": resource_id,
            "principal": principal,
            "outcome": outcome,
            "since": _iso(since),
            "until": _iso(until),
        }
        return self._client.paginate_offset(
            self._path, params=params, page_size=page_size, model=AuditEntry, amount=amount
        )
