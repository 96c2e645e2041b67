"""What a sandbox's processes see as their environment, and in which order sources win.

From lowest to highest: the image's own environment, the repository's secrets, the secrets of
the agent the sandbox runs as, the request's ``env_vars``, and, for one ``/exec`` command, the
``env`` of its launch frame. Nothing of the server's own environment is passed on.

The source is :class:`StoredSecrets` (:mod:`lamina_server.secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from lamina_server.sandboxes.models import RunAs
from lamina_server.secrets import Secrets, SecretScope


class SecretSource(Protocol):
    async def repository_secrets(self, repository_id: str) -> Mapping[str, str]: ...

    async def agent_secrets(self, run_as: RunAs) -> Mapping[str, str]: ...


class StoredSecrets:
    """The secrets kept by :class:`lamina_server.secrets.Secrets`, decrypted at launch."""

    def __init__(self, secrets: Secrets) -> None:
        self._secrets = secrets

    async def repository_secrets(self, repository_id: str) -> Mapping[str, str]:
        return await self._secrets.values(SecretScope.repository(repository_id))

    async def agent_secrets(self, run_as: RunAs) -> Mapping[str, str]:
        return await self._secrets.values(SecretScope.agent(run_as.id))


def merge_environment(*layers: Mapping[str, str]) -> dict[str, str]:
    """The layers merged, each later one winning over those before it."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return merged


async def sandbox_environment(
    secrets: SecretSource,
    *,
    image_env: Mapping[str, str],
    repository_id: str,
    run_as: RunAs | None,
    request_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment every process of one sandbox starts from."""
    repository = await secrets.repository_secrets(repository_id)
    agent = await secrets.agent_secrets(run_as) if run_as and run_as.type == "agent" else {}
    return merge_environment(image_env, repository, agent, request_env)
