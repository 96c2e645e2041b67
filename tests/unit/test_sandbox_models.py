"""Sandbox models: records, status predicates, outcomes, command output, polling schedule."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lamina import (
    PIPE,
    InvalidArgumentError,
    OutputStream,
    RunResult,
    SandboxData,
    SandboxOutcome,
    SandboxStatus,
    SandboxTriggerData,
    SandboxTriggerRun,
)
from lamina._converter import make_converter, structure
from lamina.models.sandboxes import poll_delays, without_none

STRICT = make_converter(strict=True)

SANDBOX: dict[str, Any] = {
    "id": "5b0c",
    "repository_id": "r1",
    "image": "host",
    "command": ["sh", "-c", "true"],
    "mountpoint": "/sandbox",
    "path_prefix": "",
    "timeout_seconds": None,
    "mode": "one-shot",
    "env_vars": {"A": "1"},
    "status": "done",
    "status_reason": "committed",
    "error_message": "",
    "exit_code": 0,
    "commit_id": "c1",
    "web_url": "",
    "volume_name": "",
    "container_id": "",
    "created_by_type": "user",
    "created_by": "u1",
    "created_at": "2026-01-02T03:04:05Z",
    "updated_at": "2026-01-02T03:04:06Z",
    "finished_at": None,
}


def test_the_full_sandbox_record_is_read_strictly() -> None:
    data = structure(STRICT, SANDBOX, SandboxData)
    assert data.command == ("sh", "-c", "true")
    assert data.is_committed and data.is_terminal and not data.is_active
    assert data.to_status() == SandboxStatus("done", "committed", 0, "c1", "", "")


@pytest.mark.parametrize(
    ("status", "reason", "true"),
    [
        ("starting", "created", {"is_active"}),
        ("running", "", {"is_active", "is_running"}),
        ("done", "committed", {"is_terminal", "is_committed"}),
        ("done", "no_changes", {"is_terminal", "has_no_changes"}),
        ("done", "awaiting_approval", {"is_terminal", "is_awaiting_approval"}),
        ("errored", "exit_non_zero", {"is_terminal"}),
        ("failed", "image_not_found", {"is_terminal"}),
        ("cancelled", "cancelled_by_user", {"is_terminal"}),
    ],
)
def test_status_predicates(status: str, reason: str, true: set[str]) -> None:
    value = structure(STRICT, {"status": status, "status_reason": reason}, SandboxStatus)
    predicates = {
        "is_active",
        "is_running",
        "is_terminal",
        "is_committed",
        "has_no_changes",
        "is_awaiting_approval",
    }
    assert {name for name in predicates if getattr(value, name)} == true
    assert value.state == status


def test_status_describes_itself() -> None:
    failed = SandboxStatus("failed", "image_not_found", error_message="no image 'x'")
    assert failed.describe() == "failed/image_not_found: no image 'x'"
    assert SandboxStatus("errored", "exit_non_zero", exit_code=3).describe() == (
        "errored/exit_non_zero (exit code 3)"
    )
    assert SandboxStatus("running").describe() == "running"


def test_outcomes() -> None:
    committed = SandboxOutcome.from_status(SandboxStatus("done", "committed", commit_id="c9"))
    assert (committed.kind, committed.commit_id, committed.ok) == ("committed", "c9", True)
    approval = SandboxOutcome.from_status(
        SandboxStatus("done", "awaiting_approval", web_url="http://x/approve")
    )
    assert approval.is_awaiting_approval and approval.web_url == "http://x/approve"
    assert SandboxOutcome.from_status(SandboxStatus("done", "no_changes")).has_no_changes
    for status, kind in [("errored", "errored"), ("failed", "failed"), ("cancelled", "cancelled")]:
        outcome = SandboxOutcome.from_status(SandboxStatus(status, "r"))
        assert (outcome.kind, outcome.ok) == (kind, False)
    with pytest.raises(ValueError, match="no outcome yet"):
        SandboxOutcome.from_status(SandboxStatus("running"))


def test_output_stream() -> None:
    stream = OutputStream("héllo\r\nwörld\rthree\nfour\u2028five".encode())
    assert stream.read() == "héllo\r\nwörld\rthree\nfour\u2028five".encode()
    assert stream.text() == str(stream) == "héllo\r\nwörld\rthree\nfour\u2028five"
    assert list(stream.iter_lines()) == ["héllo", "wörld", "three", "four", "five"]
    assert b"".join(stream.iter_bytes(3)) == stream.read()
    assert all(len(chunk) <= 3 for chunk in stream.iter_bytes(3))
    assert list(OutputStream(b"abcde").iter_text(2)) == ["ab", "cd", "e"]
    assert list(OutputStream("éé".encode()).iter_text(1)) == ["é", "é"]  # by characters
    assert list(OutputStream(b"").iter_lines()) == []
    assert OutputStream(b"x") == OutputStream(b"x") != OutputStream(b"y")
    assert repr(OutputStream(b"abc")) == "OutputStream(3 bytes)"
    assert OutputStream(b"\xff").text() == "\ufffd"
    with pytest.raises(InvalidArgumentError):
        list(stream.iter_bytes(0))


def test_run_result_takes_bytes_or_streams() -> None:
    result = RunResult(stdout=b"out", stderr=OutputStream(b"err"), exit_code=0)
    assert result.stdout == OutputStream(b"out") and result.stderr.text() == "err"
    assert result.ok and not RunResult(b"", b"", 1).ok


def test_triggers_and_runs_are_read_strictly() -> None:
    trigger = structure(
        STRICT,
        {
            "id": "t1",
            "repository_id": "r1",
            "name": "on-raw",
            "description": "",
            "enabled": True,
            "conditions": [{"type": "prefix", "prefix": "raw/", "diff_type": "any"}],
            "sandbox_config": {"image": "host", "command": ["make"], "env_vars": {"A": "1"}},
            "run_as": None,
            "created_by": "u1",
            "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T03:04:05Z",
        },
        SandboxTriggerData,
    )
    assert trigger.conditions[0].prefix == "raw/"
    assert trigger.sandbox_config is not None and trigger.sandbox_config.command == ("make",)
    run = structure(
        STRICT,
        {
            "id": "x",
            "repository_id": "r1",
            "trigger_id": "t1",
            "commit_id": "c1",
            "status": "created",
            "reason": "",
            "sandbox_id": "s1",
            "matched_paths": ["raw/a"],
            "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T03:04:05Z",
        },
        SandboxTriggerRun,
    )
    assert run.matched_paths == ("raw/a",)


def test_unset_members_are_left_out_of_requests() -> None:
    assert without_none({"a": None, "b": [{"c": None, "d": 1}], "e": {}}) == {
        "b": [{"d": 1}],
        "e": {},
    }


def test_polling_starts_fast_and_settles() -> None:
    delays = list(itertools.islice(poll_delays(), 27))
    assert delays[:20] == [0.005] * 20  # every 5 ms for the first 100 ms
    assert delays[20:] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25]
    # a sandbox ready after 40 ms is seen within 5 ms of it; after 300 ms, within 250 ms
    for ready, within in ((0.04, 0.005), (0.3, 0.25)):
        elapsed = 0.0
        for delay in poll_delays():
            elapsed += delay
            if elapsed >= ready - 1e-9:
                break
        assert elapsed - ready <= within + 1e-9


def test_pipe_is_a_singleton() -> None:
    assert repr(PIPE) == "PIPE"
    assert type(PIPE)() is PIPE
