"""``lamina ls``, ``cat``, ``cp`` (one file), ``rm``, ``log``, ``diff``, ``revert`` and
``sessions`` against the real server, as a user types them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Invoke

COMMITTED = re.compile(r"Committed ([0-9a-f]+)")
STAGED = re.compile(r"Staged in session (\S+) \(not committed\)")


def commit_id(output: str) -> str:
    found = COMMITTED.search(output)
    assert found, output
    return found.group(1)


def put(lamina: Invoke, tmp_path: Path, location: str, data: bytes, message: str) -> str:
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    result = lamina("cp", str(source), location, "-m", message)
    assert result.exit_code == 0, result.output
    return commit_id(result.output)


def test_cp_a_file_up_and_down_and_cat(lamina: Invoke, repository: str, tmp_path: Path) -> None:
    source = tmp_path / "report.csv"
    source.write_bytes(b"a,b\n1,2\n")
    up = lamina("cp", str(source), f"{repository}/reports/", "-m", "add report")
    assert up.exit_code == 0, up.output
    commit_id(up.output)
    assert "Uploading: 1 file, 8 B" in up.stderr

    assert lamina("cat", f"{repository}/reports/report.csv").stdout_bytes == b"a,b\n1,2\n"
    down = tmp_path / "out" / "copy.csv"
    result = lamina("cp", f"{repository}/reports/report.csv", str(down))
    assert result.exit_code == 0, result.output
    assert down.read_bytes() == b"a,b\n1,2\n"
    # into an existing folder: the object's name
    (tmp_path / "dir").mkdir()
    assert lamina("cp", f"{repository}/reports/report.csv", str(tmp_path / "dir")).exit_code == 0
    assert (tmp_path / "dir" / "report.csv").read_bytes() == b"a,b\n1,2\n"
    # to stdout, and from stdin
    assert lamina("cp", f"{repository}/reports/report.csv", "-").stdout_bytes == b"a,b\n1,2\n"
    piped = lamina("cp", "-", f"{repository}/piped.txt", "-m", "from stdin", input=b"piped\n")
    assert piped.exit_code == 0, piped.output
    assert lamina("cat", f"{repository}/piped.txt").stdout_bytes == b"piped\n"


def test_ls_levels_long_and_json(lamina: Invoke, repository: str, tmp_path: Path) -> None:
    put(lamina, tmp_path, f"{repository}/raw/a.csv", b"12345", "a")
    put(lamina, tmp_path, f"{repository}/raw/deep/b.csv", b"xy", "b")
    put(lamina, tmp_path, f"{repository}/top.txt", b"t", "top")

    assert lamina("ls", repository).stdout.splitlines() == ["raw/", "top.txt"]
    assert lamina("ls", f"{repository}/raw").stdout.splitlines() == ["raw/a.csv", "raw/deep/"]
    assert lamina("ls", "-r", f"{repository}/raw/").stdout.splitlines() == [
        "raw/a.csv",
        "raw/deep/b.csv",
    ]
    long = lamina("ls", "-l", f"{repository}/raw/").stdout.splitlines()
    assert re.fullmatch(r"\s+5  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  raw/a\.csv", long[0]), long
    assert re.fullmatch(r"\s+-  -\s+raw/deep/", long[1]), long
    listed = json.loads(lamina("ls", "--json", f"{repository}/raw/").stdout)
    assert [(item["path"], item["type"]) for item in listed] == [
        ("raw/a.csv", "object"),
        ("raw/deep/", "prefix"),
    ]
    assert listed[0]["entry"]["size"] == 5
    org = repository.split("/")[0]
    assert repository in lamina("ls", org).stdout.splitlines()


def test_reads_at_a_commit(lamina: Invoke, repository: str, tmp_path: Path) -> None:
    first = put(lamina, tmp_path, f"{repository}/v.txt", b"one", "one")
    put(lamina, tmp_path, f"{repository}/v.txt", b"two", "two")
    assert lamina("cat", f"{repository}/v.txt").stdout_bytes == b"two"
    assert lamina("cat", f"{repository}@{first}/v.txt").stdout_bytes == b"one"
    assert lamina("ls", f"{repository}@{first}").stdout.splitlines() == ["v.txt"]


def test_log_diff_and_revert(lamina: Invoke, repository: str, tmp_path: Path) -> None:
    first = put(lamina, tmp_path, f"{repository}/a.txt", b"a", "add a")
    second = put(lamina, tmp_path, f"{repository}/a.txt", b"A", "change a")
    third = put(lamina, tmp_path, f"{repository}/b.txt", b"b", "add b")

    lines = lamina("log", repository).stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [third, second, first]
    assert lines[0].endswith("add b")
    assert len(lamina("log", repository, "-n", "2").stdout.splitlines()) == 2
    logged = json.loads(lamina("log", f"{repository}@{second}", "--json").stdout)
    assert [item["id"] for item in logged[:2]] == [second, first]

    assert lamina("diff", repository, third).stdout.splitlines() == ["A  b.txt"]
    assert lamina("diff", repository, second).stdout.splitlines() == ["M  a.txt"]
    assert lamina("diff", repository, first, third).stdout.splitlines() == ["M  a.txt", "A  b.txt"]
    as_json = json.loads(lamina("diff", repository, first, third, "--json").stdout)
    assert [(item["path"], item["status"]) for item in as_json] == [
        ("a.txt", "modified"),
        ("b.txt", "added"),
    ]

    reverted = lamina("revert", repository, third, "-m", "undo b")
    assert reverted.exit_code == 0, reverted.output
    assert lamina("ls", repository).stdout.splitlines() == ["a.txt"]
    assert lamina("log", repository, "-n", "1").stdout.split()[0] == commit_id(reverted.stdout)


def test_rm_one_and_recursive(lamina: Invoke, repository: str, tmp_path: Path) -> None:
    put(lamina, tmp_path, f"{repository}/keep.txt", b"k", "keep")
    put(lamina, tmp_path, f"{repository}/tmp/a", b"a", "a")
    put(lamina, tmp_path, f"{repository}/tmp/b/c", b"c", "c")

    folder = lamina("rm", f"{repository}/tmp/", "-m", "no -r")
    assert folder.exit_code == 1 and "use -r" in folder.stderr
    missing = lamina("rm", f"{repository}/nothing.txt", "-m", "gone")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr

    recursive = lamina("rm", "-r", f"{repository}/tmp/", "-m", "clean")
    assert recursive.exit_code == 0, recursive.output
    assert "Removed 2 objects." in recursive.stdout
    assert lamina("ls", "-r", repository).stdout.splitlines() == ["keep.txt"]
    assert lamina("rm", f"{repository}/keep.txt", "-m", "all").exit_code == 0
    assert lamina("ls", repository).stdout == ""


def test_sessions_staged_changes_commit_and_rollback(
    lamina: Invoke, repository: str, tmp_path: Path
) -> None:
    put(lamina, tmp_path, f"{repository}/old.txt", b"old", "old")
    source = tmp_path / "s.txt"
    source.write_bytes(b"staged")
    staged = lamina("cp", str(source), f"{repository}/s.txt")
    assert staged.exit_code == 0, staged.output
    found = STAGED.search(staged.stdout)
    assert found, staged.output
    session = found.group(1)
    assert f"lamina sessions commit {repository} {session}" in staged.stderr
    assert lamina("ls", repository).stdout.splitlines() == ["old.txt"]  # not committed yet
    listed = lamina("sessions", "ls", repository).stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["SESSION", session]
    assert "open" in listed[1].split()
    [as_data] = json.loads(lamina("sessions", "ls", repository, "--json").stdout)
    assert (as_data["session_id"], as_data["state"]) == (session, "open")

    # more staged into the same session: a write, its removal (unstaged), a delete
    assert lamina("cp", str(source), f"{repository}/t.txt", "--session", session).exit_code == 0
    assert lamina("rm", f"{repository}/t.txt", "--session", session).exit_code == 0
    assert lamina("rm", f"{repository}/old.txt", "--session", session).exit_code == 0
    changes = lamina("sessions", "changes", repository, session).stdout.splitlines()
    assert changes == ["D  old.txt", "W  s.txt  (6 bytes)"]
    as_json = json.loads(lamina("sessions", "changes", repository, session, "--json").stdout)
    assert [(item["path"], item["entry"] is None) for item in as_json] == [
        ("old.txt", True),
        ("s.txt", False),
    ]

    committed = lamina("sessions", "commit", repository, session, "-m", "staged work")
    assert committed.exit_code == 0, committed.output
    assert lamina("log", repository, "-n", "1").stdout.split()[0] == commit_id(committed.stdout)
    assert lamina("ls", repository).stdout.splitlines() == ["s.txt"]
    nothing_open = lamina("sessions", "ls", repository)
    assert nothing_open.stdout == "" and "(none)" in nothing_open.stderr

    opened = lamina("sessions", "open", repository)
    other = opened.stdout.strip()
    assert lamina("cp", str(source), f"{repository}/u.txt", "--session", other).exit_code == 0
    rolled = lamina("sessions", "rollback", repository, other)
    assert rolled.exit_code == 0 and f"Rolled back session {other}." in rolled.stdout
    again = lamina("sessions", "commit", repository, other, "-m", "too late")
    assert again.exit_code == 1 and "request id" in again.stderr
    assert lamina("ls", repository).stdout.splitlines() == ["s.txt"]
