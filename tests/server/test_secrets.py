"""Secrets over the wire: the routes' shapes and errors, encryption at rest (no value in plain
text anywhere in the data directory; an altered or moved ciphertext does not decrypt), and the
values a sandbox sees in its environment."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from lamina.testing import LocalServer
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from tests import postgres
from tests.conftest import RepoHttp
from tests.server.sandbox_wire import Sandboxes


def _secrets(repo: RepoHttp) -> str:
    return f"{repo.base}/secrets"


def _put(repo: RepoHttp, key: str, value: str) -> httpx.Response:
    return repo.api.put(f"{_secrets(repo)}/{key}", json={"value": value})


def _error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"message", "code", "request_id"}
    assert body["code"] == code and body["request_id"]
    return body


def test_put_list_get_delete_are_wire_exact(repo_http: RepoHttp) -> None:
    base = _secrets(repo_http)
    assert repo_http.api.get(base).json() == {"results": []}
    created = _put(repo_http, "API_TOKEN", "first")
    assert (created.status_code, created.json()) == (200, {"key": "API_TOKEN"})
    assert _put(repo_http, "_other-1", "x").status_code == 200

    listed = repo_http.api.get(base)
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [entry["key"] for entry in results] == ["API_TOKEN", "_other-1"]
    first = results[0]
    assert set(first) == {"key", "created_by_type", "created_by", "created_at", "updated_at"}
    assert first["created_by_type"] == "user" and first["created_by"]
    assert first["created_at"].endswith("Z") and first["updated_at"] >= first["created_at"]
    assert "first" not in listed.text

    got = repo_http.api.get(f"{base}/API_TOKEN")
    assert (got.status_code, got.json()) == (200, {"key": "API_TOKEN", "value": "first"})
    assert got.headers["cache-control"] == "no-store"
    assert got.headers["pragma"] == "no-cache"

    # A second PUT replaces the value; the creator and creation time stay.
    assert _put(repo_http, "API_TOKEN", "second ✓").json() == {"key": "API_TOKEN"}
    assert repo_http.api.get(f"{base}/API_TOKEN").json()["value"] == "second ✓"
    again = repo_http.api.get(base).json()["results"][0]
    assert again["created_at"] == first["created_at"]
    assert again["created_by"] == first["created_by"]
    assert again["updated_at"] > first["updated_at"]

    deleted = repo_http.api.delete(f"{base}/API_TOKEN")
    assert (deleted.status_code, deleted.content) == (204, b"")
    _error(repo_http.api.get(f"{base}/API_TOKEN"), 404, "secret_not_found")
    _error(repo_http.api.delete(f"{base}/API_TOKEN"), 404, "secret_not_found")
    assert [entry["key"] for entry in repo_http.api.get(base).json()["results"]] == ["_other-1"]


def test_secrets_belong_to_their_repository(new_repo_http: Callable[[], RepoHttp]) -> None:
    one, two = new_repo_http(), new_repo_http()
    _put(one, "SHARED", "one")
    _put(two, "SHARED", "two")
    assert one.api.get(f"{_secrets(one)}/SHARED").json()["value"] == "one"
    assert two.api.get(f"{_secrets(two)}/SHARED").json()["value"] == "two"
    one.api.delete(f"{_secrets(one)}/SHARED")
    assert two.api.get(f"{_secrets(two)}/SHARED").json()["value"] == "two"


def test_unknown_repository_is_a_404(api: httpx.Client, local_server: LocalServer) -> None:
    base = f"/organizations/{local_server.org}/repositories/no-such-repo/secrets"
    _error(api.get(base), 404, "repository_not_found")
    _error(api.put(f"{base}/K", json={"value": "v"}), 404, "repository_not_found")


@pytest.mark.parametrize("key", ["_", "a", "A" * 256, "a-b_C9", "_-"])
def test_keys_matching_the_pattern_are_accepted(repo_http: RepoHttp, key: str) -> None:
    assert _put(repo_http, key, "v").json() == {"key": key}
    assert repo_http.api.get(f"{_secrets(repo_http)}/{key}").json()["value"] == "v"


@pytest.mark.parametrize("key", ["9lives", "-dash", "a.b", "a%20b", "é", "A" * 257, "a$"])
def test_keys_outside_the_pattern_are_400s(repo_http: RepoHttp, key: str) -> None:
    body = _error(_put(repo_http, key, "v"), 400, "invalid_secret_key")
    assert "^[A-Za-z_][A-Za-z0-9_-]{0,255}$" in body["message"]
    _error(repo_http.api.get(f"{_secrets(repo_http)}/{key}"), 400, "invalid_secret_key")
    _error(repo_http.api.delete(f"{_secrets(repo_http)}/{key}"), 400, "invalid_secret_key")
    assert repo_http.api.get(_secrets(repo_http)).json() == {"results": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": ""}, "value"),
        ({}, "value"),
        ({"value": 7}, "value"),
        ({"value": None}, "value"),
        ({"value": "a\u0000b"}, "value"),
        ([], "request body"),
    ],
)
def test_bad_values_are_400s_naming_the_field(
    repo_http: RepoHttp, body: object, field: str
) -> None:
    response = repo_http.api.put(f"{_secrets(repo_http)}/K", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert repo_http.api.get(_secrets(repo_http)).json() == {"results": []}


def test_a_lone_surrogate_value_is_a_400(repo_http: RepoHttp) -> None:
    response = repo_http.api.put(
        f"{_secrets(repo_http)}/K",
        content=b'{"value": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "value" in response.json()["message"]


def test_a_body_over_64_kib_is_a_413_and_one_within_is_stored(repo_http: RepoHttp) -> None:
    limit = 64 * 1024
    fits = "v" * (limit - len(b'{"value":""}'))

    def put(value: str) -> httpx.Response:
        body = b'{"value":"' + value.encode() + b'"}'
        return repo_http.api.put(
            f"{_secrets(repo_http)}/BIG",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    assert put(fits).status_code == 200
    assert repo_http.api.get(f"{_secrets(repo_http)}/BIG").json()["value"] == fits
    body = _error(put(fits + "v"), 413, "request_too_large")
    assert str(limit) in body["message"]
    # Without Content-Length (chunked), the limit holds as the body streams in.
    chunked = repo_http.api.put(
        f"{_secrets(repo_http)}/BIG",
        content=iter([b'{"value": "', b"w" * limit, b'"}']),
        headers={"Content-Type": "application/json"},
    )
    _error(chunked, 413, "request_too_large")
    assert repo_http.api.get(f"{_secrets(repo_http)}/BIG").json()["value"] == fits


# --- at rest ----------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    """Every regular file under ``root``, each once: blobs are hard links into shared pack
    files, and reading a pack once per link would read the session's data many times over."""
    seen: set[tuple[int, int]] = set()
    found = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        info = path.stat()
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            found.append(path)
    return found


def test_no_value_is_in_plain_text_anywhere_in_the_data_dir(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    value = f"lamina-secret-{uuid.uuid4().hex}"
    assert _put(repo_http, "DISTINCTIVE", value).status_code == 200
    assert _put(repo_http, "DISTINCTIVE_TOO", value + "-2").status_code == 200
    assert repo_http.api.get(f"{_secrets(repo_http)}/DISTINCTIVE").json()["value"] == value
    files = _files(local_server.data_dir)
    names = {path.name for path in files}
    database = set() if postgres.enabled() else {"metadata.db"}  # else: in PostgreSQL
    assert {"secrets.key", "server.log"} | database <= names
    needles = [value.encode(), value.encode("utf-16-le"), value.encode()[::-1]]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"a secret's value is in plain text in {path}"
    key_file = local_server.data_dir / "secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes()) == 32


class _Database:
    """The server's database, opened beside it, with sqlite3's ``execute(sql, params)``."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.conn.dialect.name == "postgresql":
            sql = sql.replace("?", "%s")
        return self.conn.exec_driver_sql(sql, params)


@contextmanager
def _database(local_server: LocalServer) -> Iterator[_Database]:
    """Committed at the end."""
    with postgres.connect(local_server.data_dir) as conn:
        yield _Database(conn)


def _repository_id(repo: RepoHttp) -> str:
    repository_id: str = repo.api.get(repo.base).json()["id"]
    return repository_id


def test_an_altered_ciphertext_is_a_500_envelope_until_written_again(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    assert _put(repo_http, "TAMPERED", "original").status_code == 200
    scope_id = _repository_id(repo_http)
    with _database(local_server) as db:
        (ciphertext,) = db.execute(
            "SELECT ciphertext FROM secrets WHERE scope_id = ? AND key = 'TAMPERED'", (scope_id,)
        ).fetchone()
        flipped = bytes([ciphertext[0] ^ 0x01]) + ciphertext[1:]
        db.execute(
            "UPDATE secrets SET ciphertext = ? WHERE scope_id = ? AND key = 'TAMPERED'",
            (flipped, scope_id),
        )
    body = _error(repo_http.api.get(f"{_secrets(repo_http)}/TAMPERED"), 500, "secret_unreadable")
    assert "TAMPERED" in body["message"] and "original" not in body["message"]
    # The list never decrypts, and a new value replaces the unreadable one.
    assert [e["key"] for e in repo_http.api.get(_secrets(repo_http)).json()["results"]] == [
        "TAMPERED"
    ]
    assert _put(repo_http, "TAMPERED", "replaced").status_code == 200
    assert repo_http.api.get(f"{_secrets(repo_http)}/TAMPERED").json()["value"] == "replaced"
    log = (local_server.data_dir / "server.log").read_text(errors="replace")
    assert "'TAMPERED'" in log and "does not decrypt" in log


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    new_repo_http: Callable[[], RepoHttp], local_server: LocalServer
) -> None:
    one, two = new_repo_http(), new_repo_http()
    _put(one, "TOKEN", "belongs-to-one")
    _put(one, "OTHER", "other-of-one")
    _put(two, "TOKEN", "belongs-to-two")
    one_id, two_id = _repository_id(one), _repository_id(two)
    with _database(local_server) as db:
        nonce, ciphertext = db.execute(
            "SELECT nonce, ciphertext FROM secrets WHERE scope_id = ? AND key = 'TOKEN'",
            (one_id,),
        ).fetchone()
        for scope_id, key in ((two_id, "TOKEN"), (one_id, "OTHER")):
            db.execute(
                "UPDATE secrets SET nonce = ?, ciphertext = ? WHERE scope_id = ? AND key = ?",
                (nonce, ciphertext, scope_id, key),
            )
    _error(two.api.get(f"{_secrets(two)}/TOKEN"), 500, "secret_unreadable")
    _error(one.api.get(f"{_secrets(one)}/OTHER"), 500, "secret_unreadable")
    assert one.api.get(f"{_secrets(one)}/TOKEN").json()["value"] == "belongs-to-one"


def test_deleting_a_repository_destroys_its_secrets(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    _put(repo_http, "GONE", "with-the-repository")
    scope_id = _repository_id(repo_http)
    assert repo_http.api.delete(repo_http.base).status_code == 204
    with _database(local_server) as db:
        rows = db.execute("SELECT key FROM secrets WHERE scope_id = ?", (scope_id,)).fetchall()
    assert rows == []


# --- sandboxes --------------------------------------------------------------------------------

_CANNOT_RUN = BubblewrapRunner().check()


@pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")
def test_a_sandbox_sees_the_repository_secrets_under_its_env_vars(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    boxes = Sandboxes(repo_http, local_server.endpoint_url, local_server.api_key)
    _put(repo_http, "FROM_SECRET", "secret-value")
    _put(repo_http, "OVERRIDDEN", "from-the-secret")
    sandbox_id = boxes.create(
        command=["sh", "-c", 'echo "[$FROM_SECRET] [$OVERRIDDEN]"'],
        env_vars={"OVERRIDDEN": "from-the-request"},
    )
    status = boxes.wait(sandbox_id)
    assert status["status"] == "done", status
    assert "[secret-value] [from-the-request]" in boxes.logs(sandbox_id)
    # The sandbox's record keeps the request's env_vars, never the secrets.
    record = repo_http.api.get(f"{boxes.base}/{sandbox_id}/status").json()
    assert "secret-value" not in str(record)


@pytest.mark.skipif(_CANNOT_RUN is not None, reason=f"no sandboxes: {_CANNOT_RUN}")
def test_a_sandbox_does_not_start_without_a_secret_that_does_not_decrypt(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    boxes = Sandboxes(repo_http, local_server.endpoint_url, local_server.api_key)
    _put(repo_http, "BROKEN", "unreadable-value")
    with _database(local_server) as db:
        db.execute(
            "UPDATE secrets SET nonce = ? WHERE scope_id = ? AND key = 'BROKEN'",
            (bytes(12), _repository_id(repo_http)),
        )
    status = boxes.wait(boxes.create(command=["true"]))
    assert (status["status"], status["status_reason"]) == ("failed", "internal_error"), status
    assert "'BROKEN'" in status["error_message"]
    assert "unreadable-value" not in str(status)


def test_agent_secrets_are_their_own_and_reach_sandboxes_run_as_the_agent(
    repo_http: RepoHttp, local_server: LocalServer
) -> None:
    api, org = repo_http.api, repo_http.repository.split("/")[0]
    created = api.post(f"/organizations/{org}/agents", json={"name": "etl", "description": ""})
    assert created.status_code == 201, created.text
    base = f"/organizations/{org}/agents/etl/secrets"
    assert api.put(f"{base}/TOKEN", json={"value": "agent-token"}).status_code == 200
    assert [e["key"] for e in api.get(base).json()["results"]] == ["TOKEN"]
    value = api.get(f"{base}/TOKEN")
    assert value.json() == {"key": "TOKEN", "value": "agent-token"}
    assert value.headers["cache-control"] == "no-store"
    assert api.get(f"/organizations/{org}/agents/nobody/secrets").status_code == 404
    assert _put(repo_http, "TOKEN", "repo-token").status_code == 200
    assert _put(repo_http, "ONLY_REPO", "r").status_code == 200
    if BubblewrapRunner().check() is None:
        boxes = Sandboxes(repo_http, local_server.endpoint_url, local_server.api_key)
        sandbox_id = boxes.create(
            command=["sh", "-c", "echo $TOKEN $ONLY_REPO"],
            run_as={"type": "agent", "id": created.json()["id"]},
        )
        boxes.wait(sandbox_id)
        assert boxes.logs(sandbox_id).split() == ["agent-token", "r"]
    assert api.delete(f"{base}/TOKEN").status_code == 204
    api.put(f"{base}/OTHER", json={"value": "x"})
    assert api.delete(f"/organizations/{org}/agents/etl").status_code == 204
    api.post(f"/organizations/{org}/agents", json={"name": "etl", "description": ""})
    assert api.get(base).json()["results"] == []  # a new agent of the name inherits nothing
