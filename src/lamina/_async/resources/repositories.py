"""Repositories: lazy handles, their settings, sessions, commits and objects at HEAD."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, repository_path
from lamina._async.resources.approvals import AsyncApprovals
from lamina._async.resources.commits import AsyncCommit, AsyncCommits
from lamina._async.resources.connectors import AsyncRepositoryConnectors
from lamina._async.resources.evidence import AsyncEvidencePacks
from lamina._async.resources.imports import AsyncImports
from lamina._async.resources.objects import AsyncReadOnlyObjects
from lamina._async.resources.sandbox_triggers import AsyncSandboxTriggers
from lamina._async.resources.sandboxes import AsyncSandboxes, AsyncShell, execute
from lamina._async.resources.secrets import AsyncSecrets
from lamina._async.resources.sessions import AsyncSession
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._types import Page
from lamina.models.repositories import ApprovalRule, RepositoryData
from lamina.models.sandboxes import RunResult
from lamina.models.sessions import OpenSession

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


def _paths(prefixes: Sequence[str]) -> list[str]:
    """``approval_paths`` as the API takes them (a lone str is one prefix, not its letters)."""
    return [prefixes] if isinstance(prefixes, str) else list(prefixes)


class AsyncRepository(AsyncDeferred):
    """A repository, named ``org/name``.

    Making the handle sends no request. Its settings (``id``, ``description``, ...) load with
    one ``GET`` the first time they are needed: the blocking client loads them on first
    access; the async client loads them when the handle is awaited or refreshed
    (``repo = await client.repository("org/repo")``).
    """

    def __init__(
        self, client: AsyncClient, org: str, name: str, data: RepositoryData | None = None
    ) -> None:
        self._client = client
        self._org = org
        self._name = name
        self._data = data
        self._api_path = repository_path(org, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._org}/{self._name})"

    @property
    def org(self) -> str:
        """Name (slug) of the organization that owns the repository."""
        return self._org

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        """``org/name``."""
        return f"{self._org}/{self._name}"

    @property
    def client(self) -> AsyncClient:
        return self._client

    @property
    def api_path(self) -> str:
        """The repository's URL path under the API base (``/organizations/o/repositories/r``)."""
        return self._api_path

    def _is_ready(self) -> bool:
        return self._data is not None

    async def _prepare(self) -> None:
        if self._data is None:
            await self.refresh()

    async def refresh(self) -> AsyncRepository:
        """Load the repository's settings again; returns the handle."""
        data = await self._client.request_json("GET", self.api_path)
        self._data = structure(self._client.converter, data, RepositoryData)
        return self

    @property
    def data(self) -> RepositoryData:
        """All loaded settings at once."""
        self._require()
        assert self._data is not None
        return self._data

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def organization_id(self) -> str:
        return self.data.organization_id

    @property
    def description(self) -> str:
        return self.data.description

    @property
    def visibility(self) -> str:
        return self.data.visibility

    @property
    def retention_days(self) -> int | None:
        return self.data.retention_days

    @property
    def session_max_duration_days(self) -> int | None:
        return self.data.session_max_duration_days

    @property
    def created_by_type(self) -> str:
        return self.data.created_by_type

    @property
    def created_by(self) -> str:
        return self.data.created_by

    @property
    def created_at(self) -> datetime | None:
        return self.data.created_at

    @property
    def approval_required_for(self) -> str:
        """Which commits wait for approval: ``none``, ``agents`` (an agent's) or ``all``."""
        return self.data.approval_required_for

    @property
    def approval_paths(self) -> tuple[str, ...]:
        """When not empty, only commits changing a path under one of these prefixes wait."""
        return self.data.approval_paths

    async def update(
        self,
        *,
        description: str | None = None,
        visibility: str | None = None,
        session_max_duration_days: int | None = None,
        retention_days: int | None = None,
        approval_required_for: ApprovalRule | None = None,
        approval_paths: Sequence[str] | None = None,
    ) -> AsyncRepository:
        """Change the given settings (the others stay); returns the reloaded handle.
        ``approval_paths=[]`` clears the prefixes (every path counts again)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if visibility is not None:
            body["visibility"] = visibility
        if session_max_duration_days is not None:
            body["session_max_duration_days"] = session_max_duration_days
        if retention_days is not None:
            body["retention_days"] = retention_days
        if approval_required_for is not None:
            body["approval_required_for"] = approval_required_for
        if approval_paths is not None:
            body["approval_paths"] = _paths(approval_paths)
        data = await self._client.request_json("PUT", self.api_path, json=body)
        self._data = structure(self._client.converter, data, RepositoryData)
        return self

    async def delete(self) -> None:
        """Delete the repository."""
        await self._client.request("DELETE", self.api_path)

    def session(self) -> AsyncSession:
        """Open a session: a transaction of object writes that ends in a commit or a rollback.

        As a context manager it commits nothing by itself: leaving the block without
        ``commit()`` (or with an exception) rolls the session back::

            with repo.session() as session:
                session.objects.put("data/report.csv", b"a,b\\n1,2\\n")
                session.commit("add report")

        Without ``with``, the call creates the session (with the async client: awaiting the
        call does) and it stays open until ``commit()`` or ``rollback()``; its
        ``session_id`` lets another process ``attach()`` to it.
        """
        return AsyncSession(self)._started()

    def attach(self, session_id: str) -> AsyncSession:
        """A handle on an existing open session (no request)."""
        return AsyncSession(self, session_id)

    def open_sessions(
        self, *, amount: int | None = None, page_size: int = 1000
    ) -> AsyncPager[OpenSession]:
        """The repository's sessions that are still open, and those held for approval
        (a Lamina extension): who opened each, when, and on which commit."""

        async def fetch_page(cursor: str | None, size: int) -> Page[OpenSession]:
            params: dict[str, Any] = {"amount": size}
            if cursor is not None:
                params["after"] = cursor
            return await self._client.fetch_page(
                f"{self.api_path}/sessions", OpenSession, params=params
            )

        return AsyncPager(fetch_page, amount=amount, page_size=page_size)

    @property
    def objects(self) -> AsyncReadOnlyObjects:
        """Objects at the latest commit (read-only)."""
        return AsyncReadOnlyObjects(self)

    @property
    def commits(self) -> AsyncCommits:
        return AsyncCommits(self)

    @property
    def sandboxes(self) -> AsyncSandboxes:
        """The repository's sandboxes: ``create()``, ``list()``, ``get()``."""
        return AsyncSandboxes(self)

    @property
    def secrets(self) -> AsyncSecrets:
        """The repository's secrets."""
        return AsyncSecrets(self._client, f"{self.api_path}/secrets")

    @property
    def connectors(self) -> AsyncRepositoryConnectors:
        """The connectors attached to the repository: ``attach()``, ``list()``, ``detach()``."""
        return AsyncRepositoryConnectors(self._client, self.api_path, organization_path(self.org))

    @property
    def imports(self) -> AsyncImports:
        """Import jobs: ``create_from_connector()``, ``create_from_repository()``, ``get()``."""
        return AsyncImports(self._client, self.api_path)

    @property
    def approvals(self) -> AsyncApprovals:
        """The commits held for approval: ``list()``, ``get()``, ``approve()``, ``reject()``,
        ``changes()``."""
        return AsyncApprovals(self._client, self.api_path)

    @property
    def evidence(self) -> AsyncEvidencePacks:
        """The repository's evidence packs (one per sandbox run and approved commit)."""
        return AsyncEvidencePacks(self._client, self.api_path)

    @property
    def sandbox_triggers(self) -> AsyncSandboxTriggers:
        """Triggers that start a sandbox when a commit changes matching paths."""
        return AsyncSandboxTriggers(self)

    def shell(
        self,
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int | None = None,
        mountpoint: str | None = None,
        path_prefix: str | None = None,
    ) -> AsyncShell:
        """A sandbox for running commands, used as a context manager::

            with repo.shell() as sh:
                result = sh.run("ls /sandbox")
                sh.run("echo done > /sandbox/out.txt", check=True)
            print(sh.outcome.commit_id)

        Commands see the repository under ``mountpoint`` (``/sandbox``); what they write
        there is committed when the block ends cleanly, and discarded when it raises.
        ``image`` defaults to the client's ``default_sandbox_image``; ``timeout`` is the most
        seconds the sandbox may live. See :class:`~lamina.AsyncShell`.
        """
        return AsyncShell(
            self,
            image=image,
            env=env,
            timeout=timeout,
            mountpoint=mountpoint,
            path_prefix=path_prefix,
        )

    async def execute(
        self,
        command: str | Sequence[str],
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int | None = None,
        check: bool = True,
        mountpoint: str | None = None,
        path_prefix: str | None = None,
    ) -> RunResult:
        """Run ``command`` (a str through ``sh -c``, a list as-is) in a one-shot sandbox and
        return its :class:`~lamina.RunResult`: the sandbox's log (stdout and stderr merged)
        as ``stdout``, an empty ``stderr``, and the exit code (``-1`` when it has none).

        What the command writes under the mount is committed if it succeeds. ``timeout``
        bounds both the sandbox and the wait: when it runs out the sandbox is cancelled and
        :class:`~lamina.SandboxError` raised. ``check`` (the default) raises
        :class:`~lamina.CommandError` for a non-zero exit code or a failed or cancelled
        sandbox. Changes waiting for approval give a ``UserWarning`` naming the page.
        """
        return await execute(
            self,
            command,
            image=image,
            env=env,
            timeout=timeout,
            check=check,
            mountpoint=mountpoint,
            path_prefix=path_prefix,
        )

    def timeline(
        self,
        *,
        ref: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[AsyncCommit]:
        """The commit log, newest first (same as ``commits.list()``)."""
        return self.commits.list(ref=ref, after=after, amount=amount, page_size=page_size)


class AsyncRepositories:
    """The repositories of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def get(self, name: str) -> AsyncRepository:
        """A handle on the repository ``name`` (no request until its settings are needed)."""
        return AsyncRepository(self._client, self._org, name)

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncRepository]:
        """The organization's repositories (``amount`` caps the total)."""
        return self._client.paginate(
            f"{organization_path(self._org)}/repositories",
            RepositoryData,
            amount=amount,
            page_size=page_size,
            after=after,
        ).map(lambda data: AsyncRepository(self._client, self._org, data.name, data))

    async def create(
        self,
        name: str,
        *,
        description: str = "",
        visibility: str = "private",
        session_max_duration_days: int | None = None,
        retention_days: int | None = None,
        approval_required_for: ApprovalRule | None = None,
        approval_paths: Sequence[str] | None = None,
    ) -> AsyncRepository:
        """Create a repository (with its first, empty commit).

        ``approval_required_for`` holds commits for a second principal's approval: ``none``
        (the server's default), ``agents`` (an agent's commits) or ``all``; with
        ``approval_paths``, only commits changing a path under one of those prefixes."""
        body: dict[str, Any] = {"name": name, "visibility": visibility}
        if description:
            body["description"] = description
        if session_max_duration_days is not None:
            body["session_max_duration_days"] = session_max_duration_days
        if retention_days is not None:
            body["retention_days"] = retention_days
        if approval_required_for is not None:
            body["approval_required_for"] = approval_required_for
        if approval_paths is not None:
            body["approval_paths"] = _paths(approval_paths)
        data = await self._client.request_json(
            "POST", f"{organization_path(self._org)}/repositories", json=body
        )
        created = structure(self._client.converter, data, RepositoryData)
        return AsyncRepository(self._client, self._org, created.name, created)

    async def delete(self, name: str) -> None:
        """Delete the repository ``name``."""
        await self.get(name).delete()
