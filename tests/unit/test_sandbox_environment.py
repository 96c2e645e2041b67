"""What a sandbox's processes see as their environment: image < repository secrets < agent
secrets < the request's env_vars, and nothing of the server's."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from lamina_server.sandboxes.environment import merge_environment, sandbox_environment
from lamina_server.sandboxes.models import RunAs


class StoredSecrets:
    """Secrets per repository and per agent, as a :class:`SecretSource` hands them out."""

    def __init__(self, repository: Mapping[str, str], agent: Mapping[str, str]) -> None:
        self.repository = repository
        self.agent = agent
        self.asked_agent: list[RunAs] = []

    async def repository_secrets(self, repository_id: str) -> Mapping[str, str]:
        return self.repository

    async def agent_secrets(self, run_as: RunAs) -> Mapping[str, str]:
        self.asked_agent.append(run_as)
        return self.agent


def test_later_layers_win() -> None:
    assert merge_environment({"A": "1", "B": "1"}, {"B": "2"}, {}) == {"A": "1", "B": "2"}


@pytest.mark.anyio
async def test_the_request_beats_agent_secrets_which_beat_repository_secrets() -> None:
    secrets = StoredSecrets(
        repository={"TOKEN": "repo", "REPO_ONLY": "r", "SHARED": "repo"},
        agent={"TOKEN": "agent", "SHARED": "agent"},
    )
    env = await sandbox_environment(
        secrets,
        image_env={"PATH": "/usr/bin", "TOKEN": "image"},
        repository_id="r1",
        run_as=RunAs("agent", "a1"),
        request_env={"SHARED": "request"},
    )
    assert env == {"PATH": "/usr/bin", "TOKEN": "agent", "REPO_ONLY": "r", "SHARED": "request"}


@pytest.mark.anyio
async def test_agent_secrets_are_only_read_when_running_as_an_agent() -> None:
    secrets = StoredSecrets(repository={}, agent={"TOKEN": "agent"})
    for run_as in (None, RunAs("role", "r1")):
        env = await sandbox_environment(
            secrets, image_env={}, repository_id="r1", run_as=run_as, request_env={}
        )
        assert env == {}
    assert secrets.asked_agent == []
