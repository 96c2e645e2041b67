"""Twenty sessions committing at the same moment over HTTP: disjoint changes all land,
overlapping ones conflict (409, nothing lands), and HEAD is exactly what the landed commits
imply — no lost update, no partial commit."""

from __future__ import annotations

import hashlib
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from tests.conftest import RepoHttp

SESSIONS = 20


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def commit_all_at_once(repo: RepoHttp, sessions: list[str]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(sessions))
    headers = dict(repo.api.headers)

    def commit(index: int) -> httpx.Response:
        with httpx.Client(base_url=repo.api.base_url, headers=headers, timeout=120.0) as http:
            http.get("/organizations")  # connect before the barrier, so the commits race
            barrier.wait()
            return http.post(
                f"{repo.base}/sessions/{sessions[index]}", json={"message": f"session {index}"}
            )

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        return list(pool.map(commit, range(len(sessions))))


def linear_log(repo: RepoHttp) -> list[dict]:
    commits: list[dict] = []
    after = None
    while True:
        params: dict[str, str | int] = {"amount": 1000}
        if after:
            params["after"] = after
        body = repo.api.get(f"{repo.base}/log", params=params).json()
        commits += body["results"]
        if not body["pagination"]["has_more"]:
            break
        after = body["pagination"]["next_offset"]
    for child, parent in itertools.pairwise(commits):
        assert child["parents"] == [parent["id"]]
    return commits


def test_disjoint_sessions_all_land(repo_http: RepoHttp) -> None:
    sessions = [repo_http.session() for _ in range(SESSIONS)]
    expected: dict[str, str] = {}
    for index, session in enumerate(sessions):
        for part in range(3):
            data = f"session {index} part {part}".encode()
            path = f"s{index:02}/part{part}.txt"
            repo_http.put(session, path, data)
            expected[path] = md5(data)

    responses = commit_all_at_once(repo_http, sessions)

    assert [r.status_code for r in responses] == [200] * SESSIONS, [r.text for r in responses]
    commit_ids = {r.json()["commit_id"] for r in responses}
    assert len(commit_ids) == SESSIONS
    assert repo_http.tree() == expected
    history = linear_log(repo_http)
    assert {c["id"] for c in history[:SESSIONS]} == commit_ids
    assert history[0]["object_count"] == 3 * SESSIONS


def test_overlapping_sessions_conflict_and_head_matches_landed_commits(
    repo_http: RepoHttp,
) -> None:
    # A base commit that some sessions will modify or delete.
    seed = repo_http.session()
    repo_http.put(seed, "hot/shared.txt", b"seed")
    repo_http.put(seed, "cold/keep.txt", b"keep")
    repo_http.commit(seed, "seed")

    sessions = [repo_http.session() for _ in range(SESSIONS)]
    staged: list[dict[str, bytes | None]] = []
    for index, session in enumerate(sessions):
        changes: dict[str, bytes | None] = {f"own/{index:02}.txt": f"own {index}".encode()}
        if index % 3 == 0:  # 7 sessions all rewrite the same path
            changes["hot/shared.txt"] = f"rewritten by {index}".encode()
        elif index == 1:  # one deletes it: overlaps with the rewrites too
            changes["hot/shared.txt"] = None
        for path, data in changes.items():
            if data is None:
                repo_http.delete(session, path)
            else:
                repo_http.put(session, path, data)
        staged.append(changes)

    responses = commit_all_at_once(repo_http, sessions)

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    touching_hot = [i for i, changes in enumerate(staged) if "hot/shared.txt" in changes]
    landed = [i for i, status in enumerate(statuses) if status == 200]
    # Every session that leaves the hot path alone lands; exactly one of those touching it does.
    assert set(range(SESSIONS)) - set(touching_hot) <= set(landed)
    assert len([i for i in touching_hot if i in landed]) == 1
    for index, response in enumerate(responses):
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "merge_conflict"
            assert "hot/shared.txt" in body["message"]
            assert f"own/{index:02}.txt" not in body["message"]

    # HEAD is exactly the seed plus every landed session's changes; no 409 session leaked in.
    expected = {"hot/shared.txt": md5(b"seed"), "cold/keep.txt": md5(b"keep")}
    for index in landed:
        for path, data in staged[index].items():
            if data is None:
                expected.pop(path, None)
            else:
                expected[path] = md5(data)
    assert repo_http.tree() == expected

    history = linear_log(repo_http)
    landed_ids = {responses[i].json()["commit_id"] for i in landed}
    assert {c["id"] for c in history[: len(landed)]} == landed_ids
    assert history[len(landed)]["message"] == "seed"
