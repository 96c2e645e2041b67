"""Sessions: transactions of object writes that end in a commit or a rollback."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources.objects import AsyncSessionObjects
from lamina._concurrency import asleep
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._errors import (
    ApprovalRejectedError,
    ApprovalTimeoutError,
    LaminaError,
    NotFoundError,
    SerializationError,
)
from lamina.models.commits import CommitCreated
from lamina.models.governance import Approval
from lamina.models.objects import EntryRecord
from lamina.models.sessions import ApprovalRequired, CommitResult, SessionCreated

if TYPE_CHECKING:
    from lamina._async.resources.repositories import AsyncRepository

#: Seconds between two checks of a session waiting for approval.
APPROVAL_POLL_INTERVAL = 2.0


class AsyncSession(AsyncDeferred):
    """An open session on a repository: stage writes with ``objects``, then ``commit()``.

    Made by ``repo.session()`` (which creates it on the server) or ``repo.attach(id)``
    (an existing one). Used as a context manager, it rolls back on leaving the block when
    neither ``commit()`` nor ``rollback()`` was called, or when the block raised; it never
    rolls back after a commit.
    """

    def __init__(self, repository: AsyncRepository, session_id: str | None = None) -> None:
        self._repository = repository
        self._client = repository.client
        self._session_id = session_id
        self._committed = False
        self._rolled_back = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._session_id!r})"

    def _is_ready(self) -> bool:
        return self._session_id is not None

    async def _prepare(self) -> None:
        if self._session_id is None:
            data = await self._client.request_json("POST", f"{self._repository.api_path}/sessions")
            self._session_id = structure(self._client.converter, data, SessionCreated).session_id

    @property
    def session_id(self) -> str:
        """The server's id of the session (pass it to ``repo.attach()`` elsewhere)."""
        self._require()
        assert self._session_id is not None
        return self._session_id

    @property
    def repository(self) -> AsyncRepository:
        return self._repository

    @property
    def objects(self) -> AsyncSessionObjects:
        """Objects as this session sees them (its base commit plus its staged changes)."""
        return AsyncSessionObjects(self._repository, self.session_id)

    @property
    def _path(self) -> str:
        return f"{self._repository.api_path}/sessions/{self.session_id}"

    def uncommitted(
        self,
        *,
        prefix: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[EntryRecord]:
        """The session's staged changes (``entry`` is ``None`` for a staged delete)."""
        params: dict[str, Any] = {"session_id": self.session_id}
        if prefix is not None:
            params["prefix"] = prefix
        return self._client.paginate(
            f"{self._repository.api_path}/changes",
            EntryRecord,
            params=params,
            amount=amount,
            page_size=page_size,
            after=after,
        )

    async def commit_result(
        self, message: str, metadata: Mapping[str, str] | None = None
    ) -> CommitResult:
        """Commit, and say what happened: ``committed`` with the ``commit_id``, or
        ``approval_required`` with the ``web_url`` where a human approves it and the
        contract's ``api_url``. Never waits."""
        body: dict[str, Any] = {"message": message}
        if metadata:
            body["metadata"] = dict(metadata)
        response = await self._client.request("POST", self._path, json=body)
        self._committed = True
        try:
            data = response.json()
        except ValueError as exc:
            raise SerializationError(f"the commit response is not JSON: {exc}") from exc
        if response.status_code == 202:
            approval = structure(self._client.converter, data, ApprovalRequired)
            return CommitResult(
                status="approval_required",
                web_url=approval.web_url,
                session_id=self.session_id,
                api_url=approval.api_url or None,
            )
        created = structure(self._client.converter, data, CommitCreated)
        return CommitResult(
            status="committed", commit_id=created.commit_id, session_id=self.session_id
        )

    async def commit(
        self,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        block_for_approval: bool = True,
        timeout: float | None = None,
        poll_interval: float = APPROVAL_POLL_INTERVAL,
    ) -> str | None:
        """Commit the staged changes and return the new commit's id.

        Conflicting changes (the same paths changed since the session began) raise
        :class:`~lamina.ConflictError` and nothing lands.

        When the repository's rule asks a second principal to approve the commit, a
        ``UserWarning`` names the approval page; with ``block_for_approval`` the call then
        waits (checking every ``poll_interval`` seconds, at most ``timeout`` seconds, forever
        if ``None``, without blocking the event loop) until the session is decided, and returns
        the id of the commit that landed on approval; a rejected or withdrawn session raises
        :class:`~lamina.ApprovalRejectedError`, and a wait that runs out
        :class:`~lamina.ApprovalTimeoutError`. A server without Lamina's approval records (the
        contract has only ``…/approve``) gives ``""`` once the session is no longer pending.
        Without ``block_for_approval`` it returns ``None`` at once.
        """
        result = await self.commit_result(message, metadata)
        if result.status == "committed":
            assert result.commit_id is not None
            return result.commit_id
        web_url = result.web_url or ""
        warnings.warn(f"Approval required - review and approve at: {web_url}", stacklevel=2)
        if not block_for_approval:
            return None
        approval = await self._wait_for_decision(web_url, timeout, poll_interval)
        if approval is None:
            return ""
        if approval.state == "approved":
            return approval.commit_id or ""
        decided = f" by {approval.decided_by.name}" if approval.decided_by else ""
        why = f": {approval.reason}" if approval.reason else ""
        raise ApprovalRejectedError(
            f"session {self.session_id} was {approval.state}{decided}{why}; nothing landed",
            session_id=self.session_id,
            state=approval.state,
            reason=approval.reason,
            decided_by=approval.decided_by,
        )

    async def _wait_for_decision(
        self, web_url: str, timeout: float | None, poll_interval: float
    ) -> Approval | None:
        """Polls the contract's ``HEAD …/approve`` until the session is no longer pending,
        then reads its approval record (``None`` from a server that keeps none)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise ApprovalTimeoutError(
                    f"session {self.session_id} was not approved within {timeout} s; "
                    f"approve it at {web_url}",
                    session_id=self.session_id,
                    web_url=web_url,
                )
            delay = poll_interval
            if deadline is not None:
                delay = max(0.0, min(delay, deadline - time.monotonic()))
            await asleep(delay)
            try:
                await self._client.request("HEAD", f"{self._path}/approve")
            except NotFoundError:
                try:
                    approval = await self._repository.approvals.get(self.session_id)
                except NotFoundError:
                    return None
                if approval.state != "pending":
                    return approval

    async def rollback(self) -> None:
        """Discard the staged changes and close the session."""
        await self._client.request("DELETE", self._path)
        self._rolled_back = True

    async def __aenter__(self) -> AsyncSession:
        await self._prepare()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._committed or self._rolled_back:
            return
        if exc is None:
            await self.rollback()
            return
        with contextlib.suppress(LaminaError):  # the block's own exception is the one to see
            await self.rollback()
