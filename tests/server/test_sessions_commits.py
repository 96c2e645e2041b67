"""Sessions (create, commit, roll back, approval polling) and commits (log, get, diff,
revert) over real HTTP, with bad input for each."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import httpx
import pytest

from tests import postgres

if TYPE_CHECKING:
    from lamina.testing import LocalServer
    from tests.conftest import RepoHttp

COMMIT_KEYS = {
    "id",
    "committer",
    "committer_type",
    "committer_id",
    "message",
    "creation_date",
    "parents",
    "metadata",
    "is_stale",
    "meta_range_id",
    "object_count",
    "total_size",
}


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


# Valid JSON whose metadata key is a lone surrogate, which no storage can encode as UTF-8.
SURROGATE_KEY = {
    "content": b'{"message": "m", "metadata": {"\\ud800": "v"}}',
    "headers": {"Content-Type": "application/json"},
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def log(repo: RepoHttp, **params: str | int) -> list[dict]:
    response = repo.api.get(f"{repo.base}/log", params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def diff(repo: RepoHttp, **params: str | int) -> dict:
    response = repo.api.get(f"{repo.base}/diff", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- sessions ---------------------------------------------------------------------------------


def test_create_session(repo_http: RepoHttp) -> None:
    response = repo_http.api.post(f"{repo_http.base}/sessions")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"session_id"}
    assert body["session_id"] != repo_http.session()


def test_commit_lands_changes_and_records_the_commit(repo_http: RepoHttp) -> None:
    session = repo_http.session()
    repo_http.put(session, "data/a.csv", b"a,b\n1,2\n")
    repo_http.put(session, "readme.txt", b"hello")
    response = repo_http.api.post(
        f"{repo_http.base}/sessions/{session}",
        json={"message": "first data", "metadata": {"source": "test", "run": "7"}},
    )
    assert response.status_code == 200
    assert set(response.json()) == {"commit_id"}
    commit_id = response.json()["commit_id"]

    assert repo_http.tree() == {"data/a.csv": md5(b"a,b\n1,2\n"), "readme.txt": md5(b"hello")}
    assert repo_http.read("readme.txt") == b"hello"

    commits = log(repo_http)
    head = commits[0]
    assert head["id"] == commit_id
    assert set(head) == COMMIT_KEYS
    assert head["message"] == "first data"
    assert head["metadata"] == {"source": "test", "run": "7"}
    assert head["committer"] == "admin"
    assert head["committer_type"] == "user"
    members = repo_http.api.get(f"/organizations/{repo_http.repository.split('/')[0]}/members")
    admin_id = next(m["user_id"] for m in members.json()["results"] if m["username"] == "admin")
    assert head["committer_id"] == admin_id
    assert head["parents"] == [commits[1]["id"]]
    assert head["is_stale"] is False
    assert head["object_count"] == 2
    assert head["total_size"] == len(b"a,b\n1,2\n") + len(b"hello")
    assert isinstance(head["meta_range_id"], str) and head["meta_range_id"]
    assert head["creation_date"].endswith("Z")
    created = datetime.fromisoformat(head["creation_date"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 300

    fetched = repo_http.api.get(f"{repo_http.base}/commits/{commit_id}")
    assert fetched.status_code == 200
    assert fetched.json() == head


def test_commit_twice_or_after_rollback_is_400(repo_http: RepoHttp) -> None:
    committed = repo_http.session()
    repo_http.put(committed, "x", b"1")
    repo_http.commit(committed)
    again = repo_http.api.post(f"{repo_http.base}/sessions/{committed}", json={"message": "m"})
    assert "committed" in error(again, 400, "session_closed")["message"]
    error(repo_http.api.delete(f"{repo_http.base}/sessions/{committed}"), 400, "session_closed")

    rolled = repo_http.session()
    repo_http.put(rolled, "y", b"2")
    response = repo_http.api.delete(f"{repo_http.base}/sessions/{rolled}")
    assert response.status_code == 204
    assert response.content == b""
    after = repo_http.api.post(f"{repo_http.base}/sessions/{rolled}", json={"message": "m"})
    assert "rolled back" in error(after, 400, "session_closed")["message"]
    error(repo_http.api.delete(f"{repo_http.base}/sessions/{rolled}"), 400, "session_closed")
    assert repo_http.tree() == {"x": md5(b"1")}


def test_unknown_session_is_404(repo_http: RepoHttp) -> None:
    for session_id in (str(uuid.uuid4()), "not-a-uuid"):
        path = f"{repo_http.base}/sessions/{session_id}"
        error(repo_http.api.post(path, json={"message": "m"}), 404, "session_not_found")
        error(repo_http.api.delete(path), 404, "session_not_found")
        head = repo_http.api.head(f"{path}/approve")
        assert head.status_code == 404
        assert head.headers["x-request-id"]


def test_session_of_another_repository_is_404(
    repo_http: RepoHttp, new_repo_http: Callable[[], RepoHttp]
) -> None:
    other = new_repo_http()
    session = other.session()
    response = repo_http.api.post(f"{repo_http.base}/sessions/{session}", json={"message": "m"})
    error(response, 404, "session_not_found")
    other.commit(session)  # still usable where it belongs


def test_approval_polling_is_404_unless_pending(repo_http: RepoHttp) -> None:
    open_session = repo_http.session()
    committed = repo_http.session()
    repo_http.commit(committed)
    rolled = repo_http.session()
    repo_http.api.delete(f"{repo_http.base}/sessions/{rolled}")
    for session in (open_session, committed, rolled):
        response = repo_http.api.head(f"{repo_http.base}/sessions/{session}/approve")
        assert response.status_code == 404
        assert response.content == b""


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"json": {}}, "message: is required"),
        ({"json": {"message": 5}}, "message: "),
        ({"json": {"message": "m", "metadata": {"k": 1}}}, "metadata.k: "),
        ({"json": {"message": "m", "metadata": ["k"]}}, "metadata: "),
        (SURROGATE_KEY, "keys must be valid UTF-8"),
        ({"content": b"{nope", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({}, "request body is required"),
    ],
)
def test_bad_commit_bodies_are_400_and_commit_nothing(
    repo_http: RepoHttp, kwargs: dict, expected: str
) -> None:
    session = repo_http.session()
    repo_http.put(session, "staged", b"s")
    response = repo_http.api.post(f"{repo_http.base}/sessions/{session}", **kwargs)
    assert expected in error(response, 400, "bad_request")["message"]
    assert repo_http.tree() == {}
    repo_http.commit(session)  # the session is still open and intact
    assert repo_http.tree() == {"staged": md5(b"s")}


def test_conflicting_sessions_409_and_nothing_lands(repo_http: RepoHttp) -> None:
    first, second = repo_http.session(), repo_http.session()
    repo_http.put(first, "shared.txt", b"first")
    repo_http.put(first, "only-first.txt", b"1")
    repo_http.put(second, "shared.txt", b"second")
    repo_http.put(second, "only-second.txt", b"2")
    repo_http.commit(first)
    head_before = log(repo_http)[0]["id"]

    response = repo_http.api.post(f"{repo_http.base}/sessions/{second}", json={"message": "m"})
    body = error(response, 409, "merge_conflict")
    assert "shared.txt" in body["message"]
    assert "only-second.txt" not in body["message"]
    assert log(repo_http)[0]["id"] == head_before
    assert repo_http.tree() == {"shared.txt": md5(b"first"), "only-first.txt": md5(b"1")}


def test_disjoint_sessions_both_land(repo_http: RepoHttp) -> None:
    first, second = repo_http.session(), repo_http.session()
    repo_http.put(first, "a", b"A")
    repo_http.put(second, "b", b"B")
    c1 = repo_http.commit(first)
    c2 = repo_http.commit(second)
    assert repo_http.tree() == {"a": md5(b"A"), "b": md5(b"B")}
    assert [c["id"] for c in log(repo_http)[:2]] == [c2, c1]


# --- log --------------------------------------------------------------------------------------


def make_history(repo: RepoHttp, count: int) -> list[str]:
    ids = []
    for i in range(count):
        session = repo.session()
        repo.put(session, f"dir{i % 2}/file{i}.txt", f"v{i}".encode())
        ids.append(repo.commit(session, f"commit {i}"))
    return ids


def test_log_is_newest_first_and_paginates(repo_http: RepoHttp) -> None:
    ids = make_history(repo_http, 5)
    root = log(repo_http)[-1]["id"]
    expected = [*reversed(ids), root]
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, str | int] = {"amount": 2}
        if after:
            params["after"] = after
        body = repo_http.api.get(f"{repo_http.base}/log", params=params).json()
        assert body["pagination"]["max_per_page"] == 2
        seen += [c["id"] for c in body["results"]]
        if not body["pagination"]["has_more"]:
            assert body["pagination"]["next_offset"] == ""
            break
        after = body["pagination"]["next_offset"]
        assert after
    assert seen == expected


def test_log_ref_prefix_and_object_filters(repo_http: RepoHttp) -> None:
    ids = make_history(repo_http, 4)
    root = log(repo_http)[-1]["id"]
    assert [c["id"] for c in log(repo_http, ref=ids[1])] == [ids[1], ids[0], root]
    assert [c["id"] for c in log(repo_http, prefix="dir1/")] == [ids[3], ids[1]]
    assert [c["id"] for c in log(repo_http, object="dir0/file2.txt")] == [ids[2]]
    assert log(repo_http, object="dir0/never.txt") == []


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"amount": 0}, 400, None),
        ({"amount": 1001}, 400, None),
        ({"amount": "x"}, 400, None),
        ({"after": "%%%not-a-cursor%%%"}, 400, "invalid_cursor"),
        ({"ref": "0" * 40}, 404, "commit_not_found"),
        ({"object": "/abs"}, 400, None),
        ({"object": "a/../b"}, 400, None),
    ],
)
def test_log_bad_input(repo_http: RepoHttp, params: dict, status: int, code: str | None) -> None:
    body = error(repo_http.api.get(f"{repo_http.base}/log", params=params), status, code)
    if "amount" in params:
        assert body["message"].startswith("amount: ")


def test_get_unknown_commit_is_404(repo_http: RepoHttp) -> None:
    error(repo_http.api.get(f"{repo_http.base}/commits/{'f' * 64}"), 404, "commit_not_found")
    error(repo_http.api.get(f"{repo_http.base}/commits/nonsense"), 404, "commit_not_found")


# --- diff -------------------------------------------------------------------------------------


def test_diff_between_commits(repo_http: RepoHttp) -> None:
    s1 = repo_http.session()
    for path, data in [("keep", b"k"), ("change", b"old"), ("remove", b"r"), ("d/x", b"x")]:
        repo_http.put(s1, path, data)
    c1 = repo_http.commit(s1)
    s2 = repo_http.session()
    repo_http.put(s2, "change", b"new")
    repo_http.delete(s2, "remove")
    repo_http.put(s2, "d/added", b"a")
    c2 = repo_http.commit(s2)

    body = diff(repo_http, left=c1, right=c2)
    assert set(body) == {"results", "pagination"}
    assert body["pagination"] == {"has_more": False, "next_offset": "", "max_per_page": 1000}
    items = {item["path"]: item for item in body["results"]}
    assert {path: item["status"] for path, item in items.items()} == {
        "change": "modified",
        "remove": "removed",
        "d/added": "added",
    }
    assert all(item["type"] == "object" for item in items.values())
    changed = items["change"]["entry"]
    assert changed["e_tag"] == md5(b"new")
    assert changed["size"] == 3
    assert set(changed) >= {"last_modified", "size", "e_tag", "metadata", "content_type"}
    assert "entry" not in items["remove"] or items["remove"]["entry"] is None

    prefixed = diff(repo_http, left=c1, right=c2, prefix="d/")
    assert [item["path"] for item in prefixed["results"]] == ["d/added"]

    grouped = diff(repo_http, left=c1, right=c2, delimiter="/")
    kinds = {item["path"]: item["type"] for item in grouped["results"]}
    assert kinds["d/"] == "prefix"
    assert "d/added" not in kinds

    # Without left: against the empty tree (what the tilde SDK sends for a root commit).
    everything = diff(repo_http, right=c1)
    assert {item["path"]: item["status"] for item in everything["results"]} == {
        "keep": "added",
        "change": "added",
        "remove": "added",
        "d/x": "added",
    }


def test_diff_paginates(repo_http: RepoHttp) -> None:
    session = repo_http.session()
    for i in range(5):
        repo_http.put(session, f"f{i}", b"x")
    commit = repo_http.commit(session)
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, str | int] = {"right": commit, "amount": 2}
        if after:
            params["after"] = after
        body = diff(repo_http, **params)
        seen += [item["path"] for item in body["results"]]
        if not body["pagination"]["has_more"]:
            break
        after = body["pagination"]["next_offset"]
    assert seen == [f"f{i}" for i in range(5)]


def test_diff_of_a_session(repo_http: RepoHttp) -> None:
    base = repo_http.session()
    repo_http.put(base, "old", b"o")
    repo_http.commit(base)
    session = repo_http.session()
    repo_http.put(session, "new", b"n")
    repo_http.delete(session, "old")
    body = diff(repo_http, session_id=session)
    assert {item["path"]: item["status"] for item in body["results"]} == {
        "new": "added",
        "old": "removed",
    }


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, None),
        ({"left": "abc"}, 400, None),
        ({"right": "0" * 40}, 404, "commit_not_found"),
        ({"session_id": str(uuid.uuid4())}, 404, "session_not_found"),
        ({"amount": 0, "right": "x"}, 400, None),
        ({"amount": 1001, "right": "x"}, 400, None),
        ({"after": "a\x00b", "right": "HEAD-ID"}, 400, "invalid_cursor"),
    ],
)
def test_diff_bad_input(repo_http: RepoHttp, params: dict, status: int, code: str | None) -> None:
    if params.get("right") == "HEAD-ID":
        params = {**params, "right": log(repo_http)[0]["id"]}
    error(repo_http.api.get(f"{repo_http.base}/diff", params=params), status, code)


# --- revert -----------------------------------------------------------------------------------


def test_revert_undoes_a_commit(repo_http: RepoHttp) -> None:
    s1 = repo_http.session()
    repo_http.put(s1, "a", b"1")
    c1 = repo_http.commit(s1, "add a")
    s2 = repo_http.session()
    repo_http.put(s2, "a", b"2")
    repo_http.put(s2, "b", b"b")
    c2 = repo_http.commit(s2, "change a, add b")

    response = repo_http.api.post(f"{repo_http.base}/commits/{c2}/revert", json={})
    assert response.status_code == 201
    assert set(response.json()) == {"commit_id"}
    reverted = response.json()["commit_id"]
    assert repo_http.tree() == {"a": md5(b"1")}
    head = log(repo_http)[0]
    assert head["id"] == reverted
    assert head["parents"] == [c2]
    assert head["message"] == 'Revert "change a, add b"'
    assert c1 in [c["id"] for c in log(repo_http)]


def test_revert_with_message_metadata_or_no_body(repo_http: RepoHttp) -> None:
    commits = []
    for name in ("x", "y"):
        session = repo_http.session()
        repo_http.put(session, name, name.encode())
        commits.append(repo_http.commit(session, f"add {name}"))
    response = repo_http.api.post(
        f"{repo_http.base}/commits/{commits[1]}/revert",
        json={"message": "undo y", "metadata": {"ticket": "T-1"}},
    )
    assert response.status_code == 201
    head = log(repo_http)[0]
    assert (head["message"], head["metadata"]) == ("undo y", {"ticket": "T-1"})
    bare = repo_http.api.post(f"{repo_http.base}/commits/{commits[0]}/revert")
    assert bare.status_code == 201
    assert repo_http.tree() == {}


def test_revert_errors(repo_http: RepoHttp) -> None:
    root = log(repo_http)[-1]["id"]
    base = f"{repo_http.base}/commits"
    error(repo_http.api.post(f"{base}/{root}/revert", json={}), 400, "revert_not_supported")
    error(repo_http.api.post(f"{base}/{'0' * 40}/revert", json={}), 404, "commit_not_found")
    error(repo_http.api.post(f"{base}/{root}/revert", json={"message": 3}), 400, "bad_request")
    surrogate = error(repo_http.api.post(f"{base}/{root}/revert", **SURROGATE_KEY), 400)
    assert "keys must be valid UTF-8" in surrogate["message"]

    s1 = repo_http.session()
    repo_http.put(s1, "p", b"1")
    c1 = repo_http.commit(s1)
    s2 = repo_http.session()
    repo_http.put(s2, "p", b"2")
    repo_http.commit(s2)
    head = log(repo_http)[0]["id"]
    body = error(repo_http.api.post(f"{base}/{c1}/revert", json={}), 409, "merge_conflict")
    assert "p" in body["message"]
    assert log(repo_http)[0]["id"] == head


def test_a_commit_beyond_retention_is_stale_and_its_objects_cannot_be_read(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    api = repo_http.api
    assert api.put(repo_http.base, json={"retention_days": 1}).status_code == 200
    old, new = make_history(repo_http, 2)
    two_days_ago = int((time.time() - 2 * 86400) * 1_000_000)
    postgres.execute(  # the first commit was made two days ago, behind the server's back
        local_server.data_dir,
        "UPDATE commits SET created_at = :at WHERE id = :id",
        at=two_days_ago,
        id=old,
    )
    stale = {c["id"]: c["is_stale"] for c in log(repo_http)}
    assert stale[old] is True and stale[new] is False
    assert api.get(f"{repo_http.base}/commits/{old}").json()["is_stale"] is True
    assert api.get(f"{repo_http.base}/commits/{new}").json()["is_stale"] is False

    path = {"path": "dir0/file0.txt"}
    for response in (
        api.get(f"{repo_http.base}/object", params={**path, "ref": old}),
        api.head(f"{repo_http.base}/object", params={**path, "ref": old}),
        api.get(f"{repo_http.base}/objects", params={"ref": old}),
        api.get(f"{repo_http.base}/diff", params={"left": old, "right": new}),
    ):
        assert response.status_code == 410, response.text
        if response.request.method != "HEAD":
            assert response.json()["code"] == "commit_stale"
            assert "retention (1 days)" in response.json()["message"]
    # HEAD stays readable, and an old commit is not stale while the retention covers it.
    assert api.get(f"{repo_http.base}/objects", params={"ref": new}).status_code == 200
    assert api.put(repo_http.base, json={"retention_days": 3}).status_code == 200
    assert api.get(f"{repo_http.base}/objects", params={"ref": old}).status_code == 200
