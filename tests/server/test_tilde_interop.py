"""The official ``tilde`` SDK (0.7.9) against the reference server: nothing Lamina-specific on
the client side, so these tests pin wire compatibility."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import tilde
from tilde.exceptions import AuthenticationError, BadRequestError, ConflictError, NotFoundError

from lamina.testing import LocalServer
from tests.postgres import data_args

MULTIPART_THRESHOLD = 64 * 1024 * 1024


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[tilde.Client]:
    with tilde.Client(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url) as c:
        yield c


@pytest.fixture
def repo(client: tilde.Client, local_server: LocalServer, unique_name: Callable[..., str]):
    org = client.organizations.get(local_server.org)
    created = org.repositories.create(unique_name("interop"), description="tilde interop")
    return client.repository(f"{local_server.org}/{created.name}")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def head_objects(repo):
    """Committed objects: tilde reads them through a commit (and always at HEAD)."""
    return next(iter(repo.commits.list(amount=1))).objects


def test_organizations_and_repositories(
    client: tilde.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    orgs = {org.name for org in client.organizations.list()}
    assert local_server.org in orgs
    name = unique_name("org")
    created = client.organizations.create(name, "Interop Org")
    assert (created.name, created.display_name) == (name, "Interop Org")
    assert created.id and created.created_at is not None
    assert client.organizations.get(name).id == created.id
    members = list(created.members.list())
    assert [m.username for m in members] == ["admin"]
    assert created.members.get("admin").user_id == members[0].user_id
    username = unique_name("member")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lamina_server",
            "create-user",
            username,
            *data_args(local_server),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    joined = created.members.create(username)
    assert joined.username == username
    joined.delete()
    assert [m.username for m in created.members.list()] == ["admin"]

    repos = created.repositories
    repo = repos.create(
        "first",
        description="d",
        visibility="public",
        retention_days=30,
        session_max_duration_days=2,
    )
    assert (repo.description, repo.visibility, repo.retention_days) == ("d", "public", 30)
    assert repo.session_max_duration_days == 2
    assert repo.created_by_type == "user" and repo.created_by
    with pytest.raises(ConflictError):
        repos.create("first")
    with pytest.raises(BadRequestError):
        repos.create("Bad_Name")
    repos.create("second")
    assert [r.name for r in repos.list(page_size=1)] == ["first", "second"]

    handle = client.repository(f"{name}/first")
    updated = handle.update(description="changed")
    assert updated.description == "changed"
    assert updated.visibility == "public"
    handle.delete()
    with pytest.raises(NotFoundError):
        client.repository(f"{name}/first").refresh()
    assert [r.name for r in repos.list()] == ["second"]


def test_session_objects_round_trip(repo) -> None:
    with repo.session() as session:
        result = session.objects.put("data/hello.txt", b"hello world")
        assert result.path == "data/hello.txt"
        session.objects.put("data/sub/one.csv", b"1\n")
        session.objects.put("top.bin", bytes(range(256)))
        assert session.objects.head("top.bin").content_length == 256
        with session.objects.get("data/hello.txt") as reader:
            assert reader.read() == b"hello world"
        copied = session.objects.copy("data/hello.txt", "data/copy.txt")
        assert copied.destination_path == "data/copy.txt"
        session.objects.delete("data/sub/one.csv")
        session.objects.put("gone/a", b"a")
        session.objects.put("gone/b", b"b")
        assert session.objects.delete_many(["gone/a", "gone/b"]) == 2
        pending = {record.path: record.entry for record in session.uncommitted()}
        assert set(pending) >= {"data/hello.txt", "data/copy.txt", "top.bin"}
        commit_id = session.commit("interop commit", metadata={"via": "tilde"})
    assert commit_id

    listed = {entry.path: entry for entry in head_objects(repo).list()}
    assert set(listed) == {"data/hello.txt", "data/copy.txt", "top.bin"}
    assert listed["data/hello.txt"].entry.e_tag == md5(b"hello world")
    assert listed["data/hello.txt"].entry.size == 11
    assert listed["data/copy.txt"].entry.e_tag == md5(b"hello world")
    grouped = [(entry.path, entry.type) for entry in head_objects(repo).list(delimiter="/")]
    assert grouped == [("data/", "prefix"), ("top.bin", "object")]

    with head_objects(repo).get("top.bin", byte_range=(10, 19)) as reader:
        assert reader.read() == bytes(range(10, 20))
    with head_objects(repo).get("top.bin", byte_range=(250, None)) as reader:
        assert reader.read() == bytes(range(250, 256))
    meta = head_objects(repo).head("data/hello.txt")
    assert meta.content_length == 11
    assert meta.etag and meta.etag.strip('"') == md5(b"hello world")
    with pytest.raises(NotFoundError):
        head_objects(repo).head("data/sub/one.csv")


def test_commits_diff_and_revert(repo) -> None:
    with repo.session() as session:
        session.objects.put("a.txt", b"one")
        session.objects.put("b.txt", b"bee")
        first = session.commit("first")
    with repo.session() as session:
        session.objects.put("a.txt", b"two")
        session.objects.delete("b.txt")
        session.objects.put("c.txt", b"sea")
        second = session.commit("second", metadata={"k": "v"})

    commits = list(repo.commits.list())
    assert [c.id for c in commits[:2]] == [second, first]
    assert commits[-1].parents == []
    head = repo.commits.get(second)
    assert head.message == "second"
    assert head.metadata == {"k": "v"}
    assert head.parents == [first]
    assert head.committer == "admin" and head.committer_type == "user"
    assert head.creation_date is not None and head.creation_date.tzinfo is not None
    assert head.object_count == 2
    assert head.total_size == len(b"two") + len(b"sea")
    assert head.meta_range_id
    assert head.is_stale is False
    assert next(iter(repo.commits.list(ref=first))).id == first
    assert len(list(repo.commits.list(amount=2, page_size=1))) == 2

    changes = {entry.path: entry.status for entry in head.diff()}
    assert changes == {"a.txt": "modified", "b.txt": "removed", "c.txt": "added"}
    root_changes = {entry.path: entry.status for entry in commits[-1].diff()}
    assert root_changes == {}
    first_changes = {entry.path: entry.status for entry in repo.commits.get(first).diff()}
    assert first_changes == {"a.txt": "added", "b.txt": "added"}

    reverted = head.revert()
    assert reverted.message == 'Revert "second"'
    assert reverted.parents == [second]
    with head_objects(repo).get("a.txt") as reader:
        assert reader.read() == b"one"
    assert {entry.path for entry in head_objects(repo).list()} == {"a.txt", "b.txt"}
    with pytest.raises(BadRequestError):
        commits[-1].revert()


def test_commit_result_and_rollback(repo) -> None:
    session = repo.session()
    session.objects.put("x", b"x")
    result = session.commit_result("via commit_result")
    assert result.status == "committed" and result.commit_id
    with repo.session() as session:
        session.objects.put("y", b"y")
        # leaving the block without committing rolls back
    assert {entry.path for entry in head_objects(repo).list()} == {"x"}
    stale = repo.session()
    stale.rollback()
    with pytest.raises(BadRequestError):
        stale.commit("too late")


def test_conflict_surfaces_as_conflict_error(repo) -> None:
    first, second = repo.session(), repo.session()
    first.objects.put("same", b"1")
    second.objects.put("same", b"2")
    first.commit("first")
    with pytest.raises(ConflictError) as info:
        second.commit("second")
    assert "same" in info.value.message
    assert info.value.request_id


@pytest.mark.slow
def test_multipart_upload_over_64_mib(repo, tmp_path) -> None:
    size = MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17
    source = tmp_path / "big.bin"
    digest = hashlib.md5()
    with source.open("wb") as handle:
        block = os.urandom(1024 * 1024)
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    with repo.session() as session:
        session.objects.put("big.bin", source)
        session.commit("big")
    (entry,) = list(head_objects(repo).list(prefix="big"))
    assert entry.entry.size == size
    with head_objects(repo).get("big.bin", cache=False) as reader:
        received = hashlib.md5()
        total = 0
        for chunk in reader.iter_bytes(1024 * 1024):
            received.update(chunk)
            total += len(chunk)
    assert (total, received.hexdigest()) == (size, digest.hexdigest())
    with head_objects(repo).get(
        "big.bin", byte_range=(MULTIPART_THRESHOLD - 4, MULTIPART_THRESHOLD + 3)
    ) as r:
        tail = r.read()
    with source.open("rb") as handle:
        handle.seek(MULTIPART_THRESHOLD - 4)
        assert tail == handle.read(8)


def test_agents_roles_and_their_keys(
    client: tilde.Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    org = client.organizations.create(unique_name("org"), "Principals")
    agent = org.agents.create("builder", description="builds", metadata={"team": "ml"})
    assert (agent.name, agent.metadata, agent.created_by_name) == (
        "builder",
        {"team": "ml"},
        "admin",
    )
    assert agent.organization_id == org.id and agent.created_at is not None
    with pytest.raises(ConflictError):
        org.agents.create("builder")
    org.agents.create("helper")
    assert [a.name for a in org.agents.list(page_size=1)] == ["builder", "helper"]
    updated = org.agents.get("builder").update(inline_policy="GetObject()")
    assert updated.inline_policy == "GetObject()" and updated.inline_policy_updated_at is not None
    assert updated.update(inline_policy="").inline_policy == ""
    updated.update(inline_policy="GetOrganization()")  # what the agent below may do

    key = agent.api_keys.create("ci")
    assert key.token.startswith("tak-") and key.id
    [listed] = list(agent.api_keys.list())
    assert (listed.id, listed.token, listed.token_hint) == (key.id, "", key.token[-4:])
    with tilde.Client(api_key=key.token, endpoint_url=local_server.endpoint_url) as as_agent:
        assert [o.name for o in as_agent.organizations.list()] == [org.name]
        assert as_agent.organizations.get(org.name).id == org.id
    assert agent.api_keys.get(key.id).last_used_at is not None
    listed.revoke()
    assert agent.api_keys.get(key.id).revoked_at is not None
    with (
        tilde.Client(api_key=key.token, endpoint_url=local_server.endpoint_url) as as_agent,
        pytest.raises(AuthenticationError),
    ):
        as_agent.organizations.get(org.name)
    org.agents.delete("helper")
    with pytest.raises(NotFoundError):
        org.agents.get("helper")

    role = org.roles.create("deployer", description="deploys")
    assert (role.name, role.description, role.organization_id) == ("deployer", "deploys", org.id)
    assert [r.name for r in org.roles.list()] == ["deployer"]
    role_key = org.roles.get("deployer").api_keys.create("ci")
    assert role_key.token.startswith("trk-")
    role.delete()
    with (
        tilde.Client(api_key=role_key.token, endpoint_url=local_server.endpoint_url) as as_role,
        pytest.raises(AuthenticationError),
    ):
        as_role.organizations.get(org.name)

    org.delete()
    with pytest.raises(NotFoundError):
        client.organizations.get(org.name)


def test_repository_secrets(repo) -> None:
    created = repo.secrets.create("API_TOKEN", "s3cr3t")
    assert (created.name, created.value) == ("API_TOKEN", "s3cr3t")
    repo.secrets.create("API_TOKEN", "rotated")
    repo.secrets.create("_SECOND", "two")
    assert repo.secrets.get("API_TOKEN").value == "rotated"
    listed = list(repo.secrets.list())
    assert [secret.name for secret in listed] == ["API_TOKEN", "_SECOND"]
    first = listed[0]
    assert first.created_by_type == "user" and first.created_by
    assert first.created_at is not None and first.updated_at >= first.created_at
    assert first._value is None  # a list carries no values; value is fetched on first access
    assert first.value == "rotated"
    assert len(list(repo.secrets.list(amount=1))) == 1
    first.delete()
    repo.secrets.delete("_SECOND")
    assert list(repo.secrets.list()) == []
    with pytest.raises(NotFoundError):
        repo.secrets.get("API_TOKEN")
    with pytest.raises(BadRequestError):
        repo.secrets.create("9-starts-with-a-digit", "x")
    with pytest.raises(BadRequestError):
        repo.secrets.create("EMPTY", "")
