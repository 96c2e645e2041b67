"""Import jobs of a repository (``repo.imports``): from an attached connector, or from
another repository. A job runs on the server and lands as one commit, or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async.resources._paths import segment
from lamina._concurrency import asleep
from lamina._errors import ImportTimeoutError, InvalidArgumentError
from lamina.models.imports import IMPORT_ENDED, ImportJobData, StartedImport

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

#: Seconds between two reads of a job while ``wait()`` waits.
IMPORT_POLL_INTERVAL = 1.0


class AsyncImportJob:
    """An import job: its fields as last read (``status``, ``objects_imported``,
    ``commit_id``, ``error``...), ``refresh()`` and ``wait()``."""

    def __init__(self, client: AsyncClient, base_path: str, data: ImportJobData) -> None:
        self._client = client
        self._path = f"{base_path}/{segment(data.id)}"
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.data.id!r}, status={self.data.status!r})"

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def status(self) -> str:
        return self.data.status

    @property
    def objects_imported(self) -> int:
        return self.data.objects_imported

    @property
    def commit_id(self) -> str | None:
        return self.data.commit_id

    @property
    def error(self) -> str | None:
        return self.data.error

    @property
    def created_at(self) -> datetime | None:
        return self.data.created_at

    @property
    def ended(self) -> bool:
        return self.data.status in IMPORT_ENDED

    async def refresh(self) -> AsyncImportJob:
        """Read the job again; returns it."""
        data = await self._client.request_json("GET", self._path)
        self.data = self._client.structure(data, ImportJobData)
        return self

    async def wait(
        self,
        *,
        timeout: float | None = None,
        poll_interval: float = IMPORT_POLL_INTERVAL,
        on_progress: Callable[[int], None] | None = None,
    ) -> AsyncImportJob:
        """Read the job every ``poll_interval`` seconds (without blocking the event loop)
        until it ended — ``completed`` or ``failed``, both returned alike: check ``status``
        and ``error`` — and return it. ``on_progress`` is told ``objects_imported`` each time
        it grew. When ``timeout`` seconds pass first (``None``: no limit),
        :class:`~lamina.ImportTimeoutError` carries the job as last read; it runs on."""
        if poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {poll_interval!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        told = -1
        while True:
            await self.refresh()
            if on_progress is not None and self.data.objects_imported > told:
                told = self.data.objects_imported
                on_progress(told)
            if self.ended:
                return self
            delay = poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ImportTimeoutError(
                        f"import job {self.id} is still {self.status} after {timeout} s",
                        job=self.data,
                    )
                delay = min(delay, remaining)
            await asleep(delay)


class AsyncImports:
    """A repository's import jobs."""

    def __init__(self, client: AsyncClient, repo_path: str) -> None:
        self._client = client
        self._path = f"{repo_path}/import"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    async def get(self, job_id: str) -> AsyncImportJob:
        return await AsyncImportJob(self._client, self._path, ImportJobData(job_id)).refresh()

    async def _start(
        self,
        body: dict[str, Any],
        source_prefix: str | None,
        commit_message: str | None,
    ) -> AsyncImportJob:
        if source_prefix is not None:
            body["source_prefix"] = source_prefix
        if commit_message is not None:
            body["commit_message"] = commit_message
        data = await self._client.request_json("POST", self._path, json=body)
        return await self.get(self._client.structure(data, StartedImport).job_id)

    async def create_from_connector(
        self,
        connector_id: str,
        destination_path: str,
        *,
        source_prefix: str | None = None,
        commit_message: str | None = None,
    ) -> AsyncImportJob:
        """Start importing the objects under the folder ``source_prefix`` of an attached
        connector into the folder ``destination_path``; the job as just started."""
        body = {"connector_id": connector_id, "destination_path": destination_path}
        return await self._start(body, source_prefix, commit_message)

    async def create_from_repository(
        self,
        repo_path: str,
        destination_path: str,
        *,
        source_prefix: str | None = None,
        commit_message: str | None = None,
    ) -> AsyncImportJob:
        """Start importing another repository's objects (``"org/repo"``, at its HEAD now,
        under ``source_prefix``) into ``destination_path``; no byte is copied. The caller must
        be allowed to read the source."""
        org, _, repo = repo_path.partition("/")
        if not org or not repo or "/" in repo:
            raise InvalidArgumentError(f"repo_path must be 'org/repo', got {repo_path!r}")
        body = {
            "source_organization": org,
            "source_repository": repo,
            "destination_path": destination_path,
        }
        return await self._start(body, source_prefix, commit_message)
