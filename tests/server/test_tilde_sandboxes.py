"""The official ``tilde`` SDK's sandboxes against the reference server: ``repo.shell()`` with
``sh.run``, ``repo.execute``, ``repo.sandboxes`` and ``repo.sandbox_triggers``, unchanged.

The official client's default image is ``ubuntu:22.04``; a server admin maps it onto the host
image with ``lamina server image alias``, as these tests do."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import tilde
from tilde.exceptions import CommandError

from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests.postgres import data_args

_CANNOT_RUN = BubblewrapRunner().check()
pytestmark = pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")


@pytest.fixture(scope="module")
def ubuntu_alias(local_server: LocalServer) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "image",
            "alias",
            "ubuntu:22.04",
            "host",
            *data_args(local_server),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def client(local_server: LocalServer, ubuntu_alias: None) -> Iterator[tilde.Client]:
    with tilde.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url) as c:
        yield c


@pytest.fixture
def repo(client: tilde.Client, local_server: LocalServer, unique_name: Callable[..., str]):
    org = client.organizations.get(local_server.org)
    created = org.repositories.create(unique_name("sandboxes"))
    return client.repository(f"{local_server.org}/{created.name}")


def head_paths(repo) -> set[str]:
    return {obj.path for obj in next(iter(repo.commits.list(amount=1))).objects.list()}


def test_shell_runs_commands_and_commits_on_exit(repo) -> None:
    with repo.shell() as sh:
        result = sh.run("echo out; echo err >&2; exit 3")
        assert (result.stdout.text(), result.stderr.text(), result.exit_code) == (
            "out\n",
            "err\n",
            3,
        )
        assert sh.run("echo data > /sandbox/written.txt", check=True).exit_code == 0
        assert sh.run("cat", stdin=b"round trip").stdout.read() == b"round trip"
        with pytest.raises(CommandError) as raised:
            sh.run("exit 5", check=True)
        assert raised.value.result.exit_code == 5
        sandbox_id = sh._sandbox.id
    deadline = time.monotonic() + 30
    while "written.txt" not in head_paths(repo):
        assert time.monotonic() < deadline, "the shell's changes never landed"
        time.sleep(0.1)
    status = repo.sandboxes.get(sandbox_id).status()
    assert status.is_committed and status.commit_id


def test_a_shell_that_raises_rolls_back(repo) -> None:
    with pytest.raises(RuntimeError), repo.shell() as sh:
        sh.run("echo x > /sandbox/never.txt", check=True)
        sandbox_id = sh._sandbox.id
        raise RuntimeError("abandon")
    status = repo.sandboxes.get(sandbox_id).status()
    deadline = time.monotonic() + 30
    while not status.is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        status = repo.sandboxes.get(sandbox_id).status()
    assert status.state == "cancelled"
    assert "never.txt" not in head_paths(repo)


def test_execute_returns_the_merged_log_and_checks_the_exit_code(repo) -> None:
    result = repo.execute("echo hello; echo x > /sandbox/e.txt")
    assert (result.stdout.text(), result.exit_code) == ("hello\n", 0)
    assert "e.txt" in head_paths(repo)
    assert repo.execute(["sh", "-c", "exit 2"], check=False).exit_code == 2
    with pytest.raises(CommandError):
        repo.execute("exit 4")


def test_sandboxes_collection_and_status_predicates(repo) -> None:
    sandbox = repo.sandboxes.create(image="host", command=["sh", "-c", "true"])
    deadline = time.monotonic() + 30
    status = sandbox.status()
    while not status.is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        status = sandbox.status()
    assert status.has_no_changes and not status.is_active and status.exit_code == 0
    assert sandbox.id in [listed.id for listed in repo.sandboxes.list()]
    running = repo.sandboxes.create(image="host", command=["sleep", "30"])
    running.cancel()
    deadline = time.monotonic() + 30
    while not running.status().is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert running.status().state == "cancelled"


def test_sandbox_triggers_through_the_official_client(repo) -> None:
    triggers = repo.sandbox_triggers
    created = triggers.create(
        name="on-data",
        conditions=[{"type": "prefix", "prefix": "data/", "diff_type": "any"}],
        sandbox_config={
            "image": "host",
            "command": ["sh", "-c", "ls /sandbox/data > /sandbox/listing.txt"],
        },
        description="lists data/",
    )
    assert (created.name, created.enabled) == ("on-data", True)
    assert created.conditions[0].prefix == "data/"
    assert created.sandbox_config.image == "host"
    assert [trigger.id for trigger in triggers.list()] == [created.id]
    assert triggers.get(created.id).description == "lists data/"
    assert created.toggle(enabled=False).enabled is False
    assert created.toggle(enabled=True).enabled is True
    with repo.session() as session:
        session.objects.put("data/a.csv", b"a,b\n")
        session.commit("data arrives")
    deadline = time.monotonic() + 30
    while "listing.txt" not in head_paths(repo):
        assert time.monotonic() < deadline, "the trigger's sandbox never committed"
        time.sleep(0.1)
    [run] = list(created.runs.list())
    assert (run.status, run.matched_paths) == ("created", ["data/a.csv"]) and run.sandbox_id
    created.delete()
    assert list(triggers.list()) == []
