"""An organization's usage (``org.usage``): what it stores, its commits, sandbox runs and
seconds, governed runs by outcome, and its evidence packs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina.models.runs import UsageEvidencePack, UsageSummary

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncUsage:
    """The usage of an organization: ``summary()`` and ``evidence_packs()``."""

    def __init__(self, client: AsyncClient, organization_path: str) -> None:
        self._client = client
        self._path = f"{organization_path}/usage/summary"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    async def summary(self) -> UsageSummary:
        """The summary now, with the first page of its evidence packs."""
        return self._client.structure(
            await self._client.request_json("GET", self._path), UsageSummary
        )

    def evidence_packs(
        self, *, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[UsageEvidencePack]:
        """Every evidence pack of the organization, oldest first (the summary's list, paged
        by its ``evidence_limit``/``evidence_offset``)."""
        return self._client.paginate_offset(
            self._path,
            limit_param="evidence_limit",
            offset_param="evidence_offset",
            items_key="evidence_packs",
            model=UsageEvidencePack,
            page_size=page_size,
            amount=amount,
        )
