"""Governed runs (``org.runs``): the invocations of ABPs, their status, a wait for their end,
and exports of their evidence, through the ``/api/v2`` facade in the organization's name."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import facade_headers, facade_url, segment
from lamina._concurrency import asleep
from lamina._converter import format_datetime
from lamina._errors import RunTimeoutError
from lamina.models.evidence import EvidenceExport
from lamina.models.runs import Run

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

#: Seconds between two reads of a run that ``wait()`` waits for.
RUN_POLL_INTERVAL = 1.0


class AsyncRuns:
    """The governed runs of an organization: ``list()``, ``get()``, ``wait()``, and their
    evidence (``evidence()``, ``evidence_package()``)."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._headers = facade_headers(org)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._client.request_json(
            "GET",
            facade_url(self._client.endpoint_url, path),
            params=params,
            headers=self._headers,
        )

    def list(
        self, *, abp_id: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[Run]:
        """The organization's runs (only ``abp_id``'s, with it), newest first; the pager's
        ``total`` counts them."""
        return self._client.paginate_offset(
            facade_url(self._client.endpoint_url, "/pack-runs"),
            params={"abp_id": abp_id},
            headers=self._headers,
            model=Run,
            page_size=page_size,
            amount=amount,
        )

    async def get(self, run_id: str) -> Run:
        """The run ``run_id`` (an invocation's ``invocation_id``) as it is now."""
        return self._client.structure(await self._get(f"/pack-runs/{segment(run_id)}"), Run)

    async def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = RUN_POLL_INTERVAL,
    ) -> Run:
        """Read the run every ``poll_interval`` seconds (without blocking the event loop)
        until it ended — ``succeeded``, ``failed`` or ``blocked``, all returned alike — and
        return it. A run held for approval waits until it is decided. When ``timeout``
        seconds pass first (``None``: no limit), :class:`~lamina.RunTimeoutError` carries the
        run as last read; the run is left as it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = await self.get(run_id)
            if run.is_terminal:
                return run
            delay = poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RunTimeoutError(
                        f"run {run_id} is still {run.status} after {timeout} s",
                        run_id=run_id,
                        run=run,
                    )
                delay = min(delay, remaining)
            await asleep(delay)

    async def evidence(self, abp_id: str, run_id: str) -> EvidenceExport:
        """An expiring signed URL of the bundle (zip) of the run's newest evidence pack (its
        sandbox's, or its approved commit's); verify it with :func:`lamina.evidence.verify`.
        A run without a pack yet (queued or running) is a :class:`~lamina.ConflictError`."""
        data = await self._get(f"/abps/{segment(abp_id)}/invocations/{segment(run_id)}/evidence")
        return self._client.structure(data, EvidenceExport)

    async def evidence_package(self, abp_id: str, *, since: datetime | str) -> EvidenceExport:
        """An expiring signed URL of one bundle of the evidence packs made since ``since``
        (a ``datetime``, naive meaning UTC, or ISO-8601 text) in the ABP's repository — all
        of its packs, not only this ABP's runs' (at most 1000:
        :class:`~lamina.UnprocessableEntityError` past that)."""
        moment = format_datetime(since) if isinstance(since, datetime) else since
        data = await self._get(f"/abps/{segment(abp_id)}/evidence-package", {"since": moment})
        return self._client.structure(data, EvidenceExport)
