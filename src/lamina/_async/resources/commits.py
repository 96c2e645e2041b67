"""Commits: the repository's log, diffs, reverts and reads at a commit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources.objects import AsyncReadOnlyObjects
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._types import Page
from lamina.models.commits import CommitCreated, CommitData
from lamina.models.objects import ListingEntry

if TYPE_CHECKING:
    from lamina._async.resources.repositories import AsyncRepository


class AsyncCommit(AsyncDeferred):
    """A commit. Made from an id alone (``revert()`` returns one), its details load with one
    ``GET`` when first needed: on access with the blocking client, on ``await`` (or
    ``refresh()``) with the async client. Commits from ``list()``/``get()`` arrive loaded."""

    def __init__(
        self, repository: AsyncRepository, commit_id: str, data: CommitData | None = None
    ) -> None:
        self._repository = repository
        self._client = repository.client
        self._id = commit_id
        self._data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AsyncCommit):
            return NotImplemented
        return self._id == other._id and self._repository.path == other._repository.path

    def __hash__(self) -> int:
        return hash((self._repository.path, self._id))

    @property
    def id(self) -> str:
        return self._id

    def _is_ready(self) -> bool:
        return self._data is not None

    async def _prepare(self) -> None:
        if self._data is None:
            await self.refresh()

    async def refresh(self) -> AsyncCommit:
        """Load the commit's details (``GET .../commits/{id}``); returns the commit."""
        data = await self._client.request_json(
            "GET", f"{self._repository.api_path}/commits/{self._id}"
        )
        self._data = structure(self._client.converter, data, CommitData)
        return self

    @property
    def data(self) -> CommitData:
        """All loaded fields at once."""
        self._require()
        assert self._data is not None
        return self._data

    @property
    def message(self) -> str:
        return self.data.message

    @property
    def committer(self) -> str:
        return self.data.committer

    @property
    def committer_type(self) -> str:
        return self.data.committer_type

    @property
    def committer_id(self) -> str:
        return self.data.committer_id

    @property
    def creation_date(self) -> datetime | None:
        return self.data.creation_date

    @property
    def parents(self) -> tuple[str, ...]:
        return self.data.parents

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.data.metadata)

    @property
    def is_stale(self) -> bool:
        return self.data.is_stale

    @property
    def meta_range_id(self) -> str:
        return self.data.meta_range_id

    @property
    def object_count(self) -> int | None:
        return self.data.object_count

    @property
    def total_size(self) -> int | None:
        return self.data.total_size

    @property
    def objects(self) -> AsyncReadOnlyObjects:
        """The objects as they were at this commit (reads send ``ref=<id>``)."""
        return AsyncReadOnlyObjects(self._repository, ref=self._id)

    def diff(
        self,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 1000,
    ) -> AsyncPager[ListingEntry]:
        """What this commit changed against its first parent: entries with ``path`` and
        ``status`` (``added``/``modified``/``removed``)."""

        async def fetch_page(cursor: str | None, size: int) -> Page[ListingEntry]:
            await self._prepare()
            params: dict[str, Any] = {"right": self._id, "amount": size}
            if self.parents:
                params["left"] = self.parents[0]
            if cursor is not None:
                params["after"] = cursor
            if prefix is not None:
                params["prefix"] = prefix
            if delimiter is not None:
                params["delimiter"] = delimiter
            return await self._client.fetch_page(
                f"{self._repository.api_path}/diff", ListingEntry, params=params
            )

        return AsyncPager(fetch_page, amount=amount, page_size=page_size, after=after)

    async def revert(
        self, *, message: str | None = None, metadata: dict[str, str] | None = None
    ) -> AsyncCommit:
        """Make a new commit on HEAD that undoes this one; returns it (details not loaded)."""
        body: dict[str, Any] = {}
        if message is not None:
            body["message"] = message
        if metadata is not None:
            body["metadata"] = metadata
        data = await self._client.request_json(
            "POST", f"{self._repository.api_path}/commits/{self._id}/revert", json=body
        )
        created = structure(self._client.converter, data, CommitCreated)
        return AsyncCommit(self._repository, created.commit_id)


class AsyncCommits:
    """A repository's commits."""

    def __init__(self, repository: AsyncRepository) -> None:
        self._repository = repository
        self._client = repository.client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repository.path!r})"

    def list(
        self,
        *,
        ref: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[AsyncCommit]:
        """The log from ``ref`` (default: HEAD), newest first; ``amount`` caps the total."""
        params: dict[str, Any] = {}
        if ref is not None:
            params["ref"] = ref
        return self._client.paginate(
            f"{self._repository.api_path}/log",
            CommitData,
            params=params,
            amount=amount,
            page_size=page_size,
            after=after,
        ).map(lambda data: AsyncCommit(self._repository, data.id, data))

    async def get(self, commit_id: str) -> AsyncCommit:
        """The commit ``commit_id`` (``NotFoundError`` if the repository has none)."""
        return await AsyncCommit(self._repository, commit_id).refresh()
