"""Sandbox triggers over real HTTP: the CRUD contract (status codes, envelopes that name the
field), and firing — landed commits matched against the triggers, runs recorded, sandboxes
started through a launcher, loop safety, and the outbox surviving a restart.

Firing runs the real app in this process (:mod:`tests.server.in_process`) with a launcher that
records its calls: the one test double here, standing in for the sandbox orchestrator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from lamina.testing import LocalServer
from lamina_server.app import API_PREFIX, create_app
from lamina_server.config import ServerConfig
from lamina_server.sandboxes.dispatch import TriggerOutbox
from lamina_server.sandboxes.triggers import TriggerRecord
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.versioning import Committer, Entry, VersionStore
from tests import postgres
from tests.conftest import RepoHttp
from tests.server.in_process import serving

TRIGGER_KEYS = {
    "id",
    "repository_id",
    "name",
    "description",
    "enabled",
    "conditions",
    "sandbox_config",
    "run_as",
    "created_by",
    "created_at",
    "updated_at",
}
RUN_KEYS = {
    "id",
    "repository_id",
    "trigger_id",
    "commit_id",
    "status",
    "reason",
    "sandbox_id",
    "matched_paths",
    "created_at",
    "updated_at",
}
CONFIG = {"image": "python:3.12", "command": ["python", "check.py"]}


def error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    message: str = body["message"]
    return message


def triggers_of(repo: RepoHttp) -> str:
    return f"{repo.base}/sandbox-triggers"


def create(repo: RepoHttp, **body: Any) -> dict[str, Any]:
    body = {"name": f"t-{uuid.uuid4().hex[:8]}", "conditions": [], "sandbox_config": CONFIG} | body
    body["conditions"] = body["conditions"] or [{"type": "prefix", "prefix": "data/"}]
    response = repo.api.post(triggers_of(repo), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def runs_of(repo: RepoHttp, trigger_id: str, **params: Any) -> dict[str, Any]:
    response = repo.api.get(f"{triggers_of(repo)}/{trigger_id}/runs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- CRUD over the wire -----------------------------------------------------------------------


def test_create_returns_the_full_trigger(repo_http: RepoHttp) -> None:
    created = create(
        repo_http,
        name="on-data",
        conditions=[
            {"type": "prefix", "prefix": "data/"},
            {"type": "path_exact", "path": "model.bin", "diff_type": "modified"},
        ],
        sandbox_config={**CONFIG, "timeout_seconds": 60, "env_vars": {"MODE": "ci"}},
    )
    assert set(created) == TRIGGER_KEYS
    assert created["name"] == "on-data"
    assert created["description"] == ""
    assert created["enabled"] is True
    assert created["run_as"] is None
    assert created["conditions"] == [
        {"type": "prefix", "prefix": "data/", "diff_type": "any"},
        {"type": "path_exact", "path": "model.bin", "diff_type": "changed"},
    ]
    assert created["sandbox_config"] == {
        **CONFIG,
        "timeout_seconds": 60,
        "env_vars": {"MODE": "ci"},
    }
    assert created["created_at"].endswith("Z") and created["updated_at"] == created["created_at"]
    uuid.UUID(created["id"])
    got = repo_http.api.get(f"{triggers_of(repo_http)}/{created['id']}")
    assert got.status_code == 200 and got.json() == created


def test_create_takes_description_run_as_and_enabled(repo_http: RepoHttp) -> None:
    role = str(uuid.uuid4())
    created = create(
        repo_http, description="checks", run_as={"type": "role", "id": role}, enabled=False
    )
    assert created["description"] == "checks"
    assert created["run_as"] == {"type": "role", "id": role}
    assert created["enabled"] is False


def test_duplicate_name_is_409(repo_http: RepoHttp, new_repo_http: Callable[[], RepoHttp]) -> None:
    create(repo_http, name="dup")
    response = repo_http.api.post(
        triggers_of(repo_http),
        json={
            "name": "dup",
            "conditions": [{"type": "prefix", "prefix": "x"}],
            "sandbox_config": CONFIG,
        },
    )
    assert "dup" in error(response, 409, "trigger_exists")
    create(new_repo_http(), name="dup")  # unique per repository only


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"conditions": None}, "conditions"),
        ({"conditions": []}, "conditions"),
        ({"conditions": [{"type": "prefix", "prefix": "a"}] * 11}, "conditions"),
        ({"conditions": [{"type": "prefix"}]}, "conditions.0.prefix"),
        (
            {"conditions": [{"type": "prefix", "prefix": "a"}, {"type": "path_exact"}]},
            "conditions.1.path",
        ),
        ({"conditions": [{"type": "glob", "prefix": "a"}]}, "conditions.0.type"),
        (
            {"conditions": [{"type": "prefix", "prefix": "a", "diff_type": "x"}]},
            "conditions.0.diff_type",
        ),
        ({"sandbox_config": None}, "sandbox_config"),
        ({"sandbox_config": {"command": ["true"]}}, "sandbox_config.image"),
        ({"sandbox_config": {"image": "  "}}, "sandbox_config.image"),
        (
            {"sandbox_config": {"image": "i", "timeout_seconds": 0}},
            "sandbox_config.timeout_seconds",
        ),
        ({"sandbox_config": {"image": "i", "env_vars": {"A": 1}}}, "sandbox_config.env_vars.A"),
        ({"sandbox_config": {"image": "i", "mountpoint": "data"}}, "sandbox_config.mountpoint"),
        ({"run_as": {"type": "user", "id": "u"}}, "run_as.type"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    repo_http: RepoHttp, change: dict[str, Any], field: str
) -> None:
    body = {
        "name": "ok",
        "conditions": [{"type": "prefix", "prefix": "a"}],
        "sandbox_config": CONFIG,
    }
    body = {key: value for key, value in (body | change).items() if value is not None}
    message = error(repo_http.api.post(triggers_of(repo_http), json=body), 400, "bad_request")
    assert message.startswith(field), message
    assert repo_http.api.get(triggers_of(repo_http)).json()["results"] == []


def test_list_pages_by_name(repo_http: RepoHttp) -> None:
    for name in ("c", "a", "b"):
        create(repo_http, name=name)
    first = repo_http.api.get(triggers_of(repo_http), params={"amount": 2}).json()
    assert [t["name"] for t in first["results"]] == ["a", "b"]
    assert first["pagination"] == {"has_more": True, "next_offset": "b", "max_per_page": 2}
    second = repo_http.api.get(triggers_of(repo_http), params={"amount": 2, "after": "b"}).json()
    assert [t["name"] for t in second["results"]] == ["c"]
    assert second["pagination"] == {"has_more": False, "next_offset": "", "max_per_page": 2}
    assert set(second["results"][0]) == TRIGGER_KEYS


def test_unknown_and_foreign_ids_are_404(
    repo_http: RepoHttp, new_repo_http: Callable[[], RepoHttp]
) -> None:
    foreign = create(new_repo_http())["id"]
    for trigger_id in (str(uuid.uuid4()), "not-a-uuid", foreign):
        url = f"{triggers_of(repo_http)}/{trigger_id}"
        body = {
            "name": "n",
            "conditions": [{"type": "prefix", "prefix": "a"}],
            "sandbox_config": CONFIG,
        }
        error(repo_http.api.get(url), 404, "trigger_not_found")
        error(repo_http.api.put(url, json=body), 404, "trigger_not_found")
        error(repo_http.api.patch(url, json={"enabled": False}), 404, "trigger_not_found")
        error(repo_http.api.delete(url), 404, "trigger_not_found")
        error(repo_http.api.get(f"{url}/runs"), 404, "trigger_not_found")


def test_put_is_a_full_replacement(repo_http: RepoHttp) -> None:
    created = create(
        repo_http,
        description="old",
        run_as={"type": "agent", "id": str(uuid.uuid4())},
        enabled=False,
    )
    url = f"{triggers_of(repo_http)}/{created['id']}"
    replacement = {
        "name": "renamed",
        "conditions": [{"type": "path_exact", "path": "a.txt", "diff_type": "added"}],
        "sandbox_config": {"image": "ubuntu:22.04"},
    }
    response = repo_http.api.put(url, json=replacement)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced == {
        **created,
        **replacement,
        "description": "",  # left out: back to its default
        "run_as": None,
        "enabled": False,  # not part of the replacement
        "updated_at": replaced["updated_at"],
    }
    assert replaced["updated_at"] >= created["updated_at"]
    assert repo_http.api.get(url).json() == replaced

    # What the official client sends for a partial update is refused, naming what is missing.
    message = error(repo_http.api.put(url, json={"description": "only"}), 400, "bad_request")
    assert "name: is required" in message and "conditions: is required" in message
    other = create(repo_http, name="taken")
    error(repo_http.api.put(url, json={**replacement, "name": "taken"}), 409, "trigger_exists")
    assert repo_http.api.get(f"{triggers_of(repo_http)}/{other['id']}").json() == other


def test_patch_toggles_enabled(repo_http: RepoHttp) -> None:
    created = create(repo_http)
    url = f"{triggers_of(repo_http)}/{created['id']}"
    off = repo_http.api.patch(url, json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json() == {**created, "enabled": False, "updated_at": off.json()["updated_at"]}
    assert repo_http.api.patch(url, json={"enabled": True}).json()["enabled"] is True
    assert error(repo_http.api.patch(url, json={}), 400).startswith("enabled: is required")
    assert error(repo_http.api.patch(url, json={"enabled": "yes"}), 400).startswith("enabled")


def test_delete_is_204_then_404(repo_http: RepoHttp) -> None:
    created = create(repo_http)
    url = f"{triggers_of(repo_http)}/{created['id']}"
    response = repo_http.api.delete(url)
    assert response.status_code == 204 and response.content == b""
    error(repo_http.api.get(url), 404, "trigger_not_found")
    error(repo_http.api.delete(url), 404, "trigger_not_found")
    # The name is free again.
    create(repo_http, name=created["name"])


def test_runs_of_a_new_trigger_are_an_empty_page(repo_http: RepoHttp) -> None:
    created = create(repo_http)
    assert runs_of(repo_http, created["id"]) == {
        "results": [],
        "pagination": {"has_more": False, "next_offset": "", "max_per_page": 100},
    }


def test_unknown_repository_is_404(api: httpx.Client, local_server: LocalServer) -> None:
    url = f"/organizations/{local_server.org}/repositories/no-such-repo/sandbox-triggers"
    error(api.get(url), 404, "repository_not_found")


# --- firing -----------------------------------------------------------------------------------


class LaunchFailed(Exception):
    pass


@dataclass
class RecordingLauncher:
    """Records each launch and hands out a fresh sandbox id; fails for triggers whose name
    starts with ``failing``."""

    calls: list[tuple[str, str, str, int]] = field(default_factory=list)

    async def launch_for_trigger(
        self, repository_id: str, trigger: TriggerRecord, *, commit_id: str, depth: int
    ) -> str:
        self.calls.append((repository_id, trigger.id, commit_id, depth))
        if trigger.name.startswith("failing"):
            raise LaunchFailed(f"image {trigger.sandbox_config['image']!r} not found")
        return str(uuid.uuid4())


@dataclass
class Firing:
    api: httpx.Client
    launcher: RecordingLauncher
    data_dir: Path

    def repo(self) -> RepoHttp:
        name = f"repo-{uuid.uuid4().hex[:12]}"
        response = self.api.post("/organizations/local/repositories", json={"name": name})
        assert response.status_code == 201, response.text
        return RepoHttp(self.api, f"local/{name}")

    def settle(self) -> None:
        settle(self.data_dir)

    def launched(self, trigger_id: str) -> list[tuple[str, str, str, int]]:
        return [call for call in self.launcher.calls if call[1] == trigger_id]


def outbox_rows(data_dir: Path) -> int:
    count: int = postgres.scalar(data_dir, "SELECT count(*) FROM sandbox_trigger_outbox")
    return count


def settle(data_dir: Path, timeout: float = 20.0) -> None:
    """Waits until the dispatcher has processed every landed commit."""
    deadline = time.monotonic() + timeout
    while outbox_rows(data_dir):
        assert time.monotonic() < deadline, "the outbox was not drained"
        time.sleep(0.02)


def api_key(config_path: Path) -> str:
    return next(
        line.split('"')[1]
        for line in config_path.read_text().splitlines()
        if line.startswith("api_key")
    )


@contextmanager
def running(data_dir: Path, launcher: RecordingLauncher | None) -> Iterator[httpx.Client]:
    """The app on ``data_dir`` (created on first use) with ``launcher``, and a client of it."""
    config_path = data_dir / "config.toml"
    app = create_app(
        ServerConfig(data_dir=data_dir, config_path=config_path), trigger_launcher=launcher
    )
    with (
        serving(app) as port,
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}{API_PREFIX}",
            headers={"Authorization": f"Bearer {api_key(config_path)}"},
            timeout=60.0,
        ) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def firing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firing]:
    data_dir = tmp_path_factory.mktemp("triggers")
    launcher = RecordingLauncher()
    with running(data_dir, launcher) as client:
        yield Firing(client, launcher, data_dir)


def commit_paths(
    repo: RepoHttp, puts: tuple[str, ...] = (), deletes: tuple[str, ...] = (), **metadata: str
) -> str:
    session = repo.session()
    for path in puts:
        repo.put(session, path, path.encode() + uuid.uuid4().bytes)
    for path in deletes:
        repo.delete(session, path)
    response = repo.api.post(
        f"{repo.base}/sessions/{session}", json={"message": "change", "metadata": metadata}
    )
    assert response.status_code == 200, response.text
    commit_id: str = response.json()["commit_id"]
    return commit_id


def test_a_matching_commit_creates_exactly_one_run(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo, conditions=[{"type": "prefix", "prefix": "data/"}])
    commit_id = commit_paths(repo, ("data/a.csv", "data/b.csv", "docs/x.md"))
    firing.settle()

    [(repository_id, _, launched_commit, depth)] = firing.launched(trigger["id"])
    assert (launched_commit, depth) == (commit_id, 1)
    [run] = runs_of(repo, trigger["id"])["results"]
    assert set(run) == RUN_KEYS
    assert run["status"] == "created" and run["reason"] == ""
    assert run["sandbox_id"] is not None and uuid.UUID(run["sandbox_id"])
    assert run["commit_id"] == commit_id
    assert run["matched_paths"] == ["data/a.csv", "data/b.csv"]
    assert run["trigger_id"] == trigger["id"]
    assert run["repository_id"] == trigger["repository_id"] == repository_id
    assert run["created_at"].endswith("Z")


def test_diff_type_filters_what_fires(firing: Firing) -> None:
    repo = firing.repo()
    commit_paths(repo, ("data/a.csv", "data/b.csv"))
    firing.settle()
    removed = create(
        repo, conditions=[{"type": "path_exact", "path": "data/a.csv", "diff_type": "removed"}]
    )
    changed = create(
        repo, conditions=[{"type": "prefix", "prefix": "data/", "diff_type": "modified"}]
    )
    commit_id = commit_paths(repo, puts=("data/b.csv", "data/c.csv"), deletes=("data/a.csv",))
    firing.settle()
    [run] = runs_of(repo, removed["id"])["results"]
    assert (run["commit_id"], run["matched_paths"]) == (commit_id, ["data/a.csv"])
    [run] = runs_of(repo, changed["id"])["results"]
    assert run["matched_paths"] == ["data/b.csv"]


def test_a_commit_that_does_not_match_records_no_run(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo, conditions=[{"type": "prefix", "prefix": "data/"}])
    commit_paths(repo, ("docs/readme.md", "datafile"))
    firing.settle()
    assert runs_of(repo, trigger["id"])["results"] == []
    assert firing.launched(trigger["id"]) == []


def test_a_disabled_trigger_fires_nothing_and_queues_nothing(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo, enabled=False)
    commit_paths(repo, ("data/a.csv",))
    assert outbox_rows(firing.data_dir) == 0  # nothing to match: the commit queued nothing
    firing.settle()
    assert runs_of(repo, trigger["id"])["results"] == []

    repo.api.patch(f"{triggers_of(repo)}/{trigger['id']}", json={"enabled": True})
    commit_id = commit_paths(repo, ("data/b.csv",))
    firing.settle()
    assert [run["commit_id"] for run in runs_of(repo, trigger["id"])["results"]] == [commit_id]


def test_a_commit_never_fires_the_trigger_that_made_it(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo)
    other = create(repo)
    metadata = {"lamina.trigger_id": trigger["id"], "lamina.trigger_depth": "1"}
    commit_paths(repo, ("data/out.csv",), **metadata)
    firing.settle()
    [run] = runs_of(repo, trigger["id"])["results"]
    assert (run["status"], run["reason"], run["sandbox_id"]) == ("skipped", "self_triggered", None)
    assert run["matched_paths"] == ["data/out.csv"]
    assert firing.launched(trigger["id"]) == []
    # Another trigger does fire, one level deeper.
    [(_, _, _, depth)] = firing.launched(other["id"])
    assert depth == 2


def test_triggers_stop_chaining_at_the_depth_cap(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo)
    below = commit_paths(repo, ("data/a.csv",), **{"lamina.trigger_depth": "2"})
    at_cap = commit_paths(repo, ("data/b.csv",), **{"lamina.trigger_depth": "3"})
    firing.settle()
    runs = {run["commit_id"]: run for run in runs_of(repo, trigger["id"])["results"]}
    assert runs[below]["status"] == "created"
    assert (runs[at_cap]["status"], runs[at_cap]["reason"]) == ("skipped", "max_depth")
    assert [(commit, depth) for _, _, commit, depth in firing.launched(trigger["id"])] == [
        (below, 3)
    ]


def test_a_launcher_failure_is_a_failed_run_with_its_reason(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo, name="failing-image", sandbox_config={"image": "nope:1"})
    commit_paths(repo, ("data/a.csv",))
    firing.settle()
    [run] = runs_of(repo, trigger["id"])["results"]
    assert run["status"] == "failed"
    assert run["reason"] == "image 'nope:1' not found"
    assert run["sandbox_id"] is None
    assert run["matched_paths"] == ["data/a.csv"]


def test_two_triggers_on_one_commit_make_two_runs(firing: Firing) -> None:
    repo = firing.repo()
    first = create(repo, conditions=[{"type": "prefix", "prefix": "data/"}])
    second = create(repo, conditions=[{"type": "path_exact", "path": "data/a.csv"}])
    commit_id = commit_paths(repo, ("data/a.csv", "data/b.csv"))
    firing.settle()
    [one] = runs_of(repo, first["id"])["results"]
    [two] = runs_of(repo, second["id"])["results"]
    assert one["commit_id"] == two["commit_id"] == commit_id
    assert one["matched_paths"] == ["data/a.csv", "data/b.csv"]
    assert two["matched_paths"] == ["data/a.csv"]
    assert one["sandbox_id"] != two["sandbox_id"]


def test_a_revert_fires_too_and_runs_list_newest_first(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo)
    commit_id = commit_paths(repo, ("data/a.csv",))
    firing.settle()
    reverted = repo.api.post(f"{repo.base}/commits/{commit_id}/revert", json={})
    assert reverted.status_code == 201, reverted.text
    revert_id = reverted.json()["commit_id"]
    firing.settle()
    runs = runs_of(repo, trigger["id"])["results"]
    assert [(run["commit_id"], run["matched_paths"]) for run in runs] == [
        (revert_id, ["data/a.csv"]),
        (commit_id, ["data/a.csv"]),
    ]
    page = runs_of(repo, trigger["id"], amount=1)
    assert page["pagination"] == {"has_more": True, "next_offset": runs[0]["id"], "max_per_page": 1}
    rest = runs_of(repo, trigger["id"], amount=1, after=runs[0]["id"])
    assert [run["id"] for run in rest["results"]] == [runs[1]["id"]]


def test_deleting_a_trigger_deletes_its_runs(firing: Firing) -> None:
    repo = firing.repo()
    trigger = create(repo)
    commit_paths(repo, ("data/a.csv",))
    firing.settle()
    assert runs_of(repo, trigger["id"])["results"]
    assert repo.api.delete(f"{triggers_of(repo)}/{trigger['id']}").status_code == 204
    left = postgres.scalar(
        firing.data_dir,
        "SELECT count(*) FROM sandbox_trigger_runs WHERE trigger_id = :trigger",
        trigger=trigger["id"],
    )
    assert left == 0


def test_a_queued_commit_survives_a_restart_and_fires_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running(data_dir, None) as client:
        assert client.post("/organizations/local/repositories", json={"name": "kept"}).is_success
        repo = RepoHttp(client, "local/kept")
        repository_id = client.get(repo.base).json()["id"]
        trigger = create(repo)

    # The server is down; a process that commits and dies before dispatching leaves the
    # commit in the outbox, written in the commit's own transaction.
    async def commit_offline() -> str:
        db = Database(sqlite_url(data_dir))
        try:
            store = VersionStore(db, recorder=TriggerOutbox())
            who = Committer(type="user", id="offline", name="offline")
            session = await store.create_session(repository_id, created_by=who)
            entry = Entry(
                address="blobs/offline",
                size=1,
                etag="0" * 32,
                content_type="text/plain",
                last_modified=datetime.now(timezone.utc),
                metadata={},
            )
            await store.stage_put_many(repository_id, session.id, [("data/late.csv", entry)])
            return await store.commit_session(
                repository_id, session.id, message="offline", metadata={}, committer=who
            )
        finally:
            await db.dispose()

    commit_id = anyio.run(commit_offline)
    assert outbox_rows(data_dir) == 1

    launcher = RecordingLauncher()
    for _ in range(2):  # started again: drained at startup, then nothing is left to fire
        with running(data_dir, launcher) as client:
            settle(data_dir)
            [run] = runs_of(RepoHttp(client, "local/kept"), trigger["id"])["results"]
    assert (run["status"], run["commit_id"]) == ("created", commit_id)
    assert [call[2] for call in launcher.calls] == [commit_id]
