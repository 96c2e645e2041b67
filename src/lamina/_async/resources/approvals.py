"""Approvals of held commits (``repo.approvals``): a repository's rule holds a commit until a
second principal approves it (its changes land, committed as their requester) or rejects it
(nothing lands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._converter import structure
from lamina.models.commits import CommitCreated
from lamina.models.governance import Approval
from lamina.models.objects import EntryRecord

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncApprovals:
    """The approval requests of a repository: one per commit its rule held."""

    def __init__(self, client: AsyncClient, repository_path: str) -> None:
        self._client = client
        self._path = f"{repository_path}/approvals"
        self._sessions = f"{repository_path}/sessions"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    def list(
        self, *, state: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[Approval]:
        """The requests, newest first (only those in ``state``: ``pending``, ``approved``,
        ``rejected`` or ``withdrawn``); the pager's ``total`` counts them all."""
        return self._client.paginate_offset(
            self._path, params={"state": state}, page_size=page_size, model=Approval, amount=amount
        )

    async def get(self, session_id: str) -> Approval:
        """The request of the session ``session_id``."""
        data = await self._client.request_json("GET", f"{self._path}/{segment(session_id)}")
        return structure(self._client.converter, data, Approval)

    async def approve(
        self,
        session_id: str,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Approve the held session: its changes land, committed as their requester, with
        ``message`` (the requester's, without one) and ``metadata``. Returns the commit's id.
        Nobody approves their own change (:class:`~lamina.ForbiddenError`); a request already
        decided is a :class:`~lamina.ConflictError`."""
        body: dict[str, Any] = {"message": message or ""}
        if metadata:
            body["metadata"] = dict(metadata)
        data = await self._client.request_json(
            "POST", f"{self._sessions}/{segment(session_id)}/approve", json=body
        )
        return structure(self._client.converter, data, CommitCreated).commit_id

    async def reject(self, session_id: str, reason: str = "") -> Approval:
        """Reject the held session for ``reason``: its changes are rolled back. Returns the
        decided request."""
        data = await self._client.request_json(
            "POST", f"{self._sessions}/{segment(session_id)}/reject", json={"reason": reason}
        )
        return structure(self._client.converter, data, Approval)

    def changes(
        self,
        session_id: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[EntryRecord]:
        """The held session's changes, for review (``entry`` is ``None`` for a delete)."""
        return self._client.paginate(
            f"{self._sessions}/{segment(session_id)}/approve",
            EntryRecord,
            params={"prefix": prefix},
            amount=amount,
            page_size=page_size,
            after=after,
        )
