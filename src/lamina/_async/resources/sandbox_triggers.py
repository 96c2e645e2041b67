"""Sandbox triggers: start a sandbox when a commit changes paths that match conditions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina.models.sandboxes import (
    RunAs,
    SandboxTriggerCondition,
    SandboxTriggerConfig,
    SandboxTriggerData,
    SandboxTriggerRun,
    without_none,
)

if TYPE_CHECKING:
    import cattrs

    from lamina._async.resources.repositories import AsyncRepository

Condition = SandboxTriggerCondition | Mapping[str, Any]
Config = SandboxTriggerConfig | Mapping[str, Any]
Principal = RunAs | Mapping[str, str]


def to_json(converter: cattrs.Converter, value: Any) -> Any:
    """A model (or a mapping) as request JSON, its unset (``None``) members left out."""
    if isinstance(value, Mapping):
        return without_none(dict(value))
    return without_none(converter.unstructure(value))


class AsyncSandboxTriggerRuns:
    """The runs of a trigger: one per commit it was evaluated on."""

    def __init__(self, trigger: AsyncSandboxTrigger) -> None:
        self._trigger = trigger

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trigger={self._trigger.id!r})"

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[SandboxTriggerRun]:
        """The runs, newest first; ``amount`` caps the total."""
        return self._trigger._client.paginate(
            f"{self._trigger._path}/runs",
            SandboxTriggerRun,
            amount=amount,
            page_size=page_size,
            after=after,
        )


class AsyncSandboxTrigger(AsyncDeferred):
    """A sandbox trigger. Triggers from ``create()``, ``get()`` and ``list()`` arrive
    loaded; ``refresh()`` loads the record again."""

    def __init__(
        self, repository: AsyncRepository, trigger_id: str, data: SandboxTriggerData | None = None
    ) -> None:
        self._repository = repository
        self._client = repository.client
        self._id = trigger_id
        self._data = data
        self._path = f"{repository.api_path}/sandbox-triggers/{trigger_id}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"

    @property
    def id(self) -> str:
        return self._id

    def _is_ready(self) -> bool:
        return self._data is not None

    async def _prepare(self) -> None:
        if self._data is None:
            await self.refresh()

    @property
    def data(self) -> SandboxTriggerData:
        self._require()
        assert self._data is not None
        return self._data

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def description(self) -> str:
        return self.data.description

    @property
    def enabled(self) -> bool:
        return self.data.enabled

    @property
    def conditions(self) -> tuple[SandboxTriggerCondition, ...]:
        return self.data.conditions

    @property
    def sandbox_config(self) -> SandboxTriggerConfig | None:
        return self.data.sandbox_config

    @property
    def run_as(self) -> RunAs | None:
        return self.data.run_as

    @property
    def runs(self) -> AsyncSandboxTriggerRuns:
        return AsyncSandboxTriggerRuns(self)

    def _load(self, data: Any) -> AsyncSandboxTrigger:
        self._data = structure(self._client.converter, data, SandboxTriggerData)
        return self

    async def refresh(self) -> AsyncSandboxTrigger:
        """Load the trigger's record; returns the trigger."""
        return self._load(await self._client.request_json("GET", self._path))

    async def update(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        conditions: Sequence[Condition] | None = None,
        sandbox_config: Config | None = None,
        run_as: Principal | None = None,
    ) -> AsyncSandboxTrigger:
        """Change the given fields. The API replaces the whole trigger, so the fields not
        given are sent as they are now; returns the updated trigger."""
        await self._prepare()
        current = self.data
        converter = self._client.converter
        body: dict[str, Any] = {
            "name": current.name if name is None else name,
            "conditions": to_json(
                converter, list(current.conditions if conditions is None else conditions)
            ),
            "sandbox_config": to_json(
                converter, current.sandbox_config if sandbox_config is None else sandbox_config
            ),
        }
        description = current.description if description is None else description
        if description:
            body["description"] = description
        run_as = current.run_as if run_as is None else run_as
        if run_as is not None:
            body["run_as"] = to_json(converter, run_as)
        return self._load(await self._client.request_json("PUT", self._path, json=body))

    async def toggle(self, enabled: bool) -> AsyncSandboxTrigger:
        """Enable or disable the trigger; returns it."""
        return self._load(
            await self._client.request_json("PATCH", self._path, json={"enabled": enabled})
        )

    async def delete(self) -> None:
        """Delete the trigger."""
        await self._client.request("DELETE", self._path)


class AsyncSandboxTriggers:
    """A repository's sandbox triggers."""

    def __init__(self, repository: AsyncRepository) -> None:
        self._repository = repository
        self._client = repository.client
        self._path = f"{repository.api_path}/sandbox-triggers"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repository.path!r})"

    async def create(
        self,
        name: str,
        conditions: Sequence[Condition],
        sandbox_config: Config,
        description: str = "",
        run_as: Principal | None = None,
        enabled: bool | None = None,
    ) -> AsyncSandboxTrigger:
        """Create a trigger: when a commit matches any of ``conditions`` (models or dicts
        such as ``{"type": "prefix", "prefix": "raw/"}``), a sandbox starts with
        ``sandbox_config`` (e.g. ``{"image": "host", "command": ["make"]}``)."""
        converter = self._client.converter
        body: dict[str, Any] = {
            "name": name,
            "conditions": to_json(converter, list(conditions)),
            "sandbox_config": to_json(converter, sandbox_config),
        }
        if description:
            body["description"] = description
        if run_as is not None:
            body["run_as"] = to_json(converter, run_as)
        if enabled is not None:
            body["enabled"] = enabled
        data = await self._client.request_json("POST", self._path, json=body)
        created = structure(converter, data, SandboxTriggerData)
        return AsyncSandboxTrigger(self._repository, created.id, created)

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncSandboxTrigger]:
        """The repository's triggers; ``amount`` caps the total."""
        return self._client.paginate(
            self._path, SandboxTriggerData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncSandboxTrigger(self._repository, data.id, data))

    async def get(self, trigger_id: str) -> AsyncSandboxTrigger:
        """The trigger ``trigger_id`` (:class:`~lamina.NotFoundError` if none)."""
        return await AsyncSandboxTrigger(self._repository, trigger_id).refresh()

    async def delete(self, trigger_id: str) -> None:
        """Delete the trigger ``trigger_id``."""
        await AsyncSandboxTrigger(self._repository, trigger_id).delete()
