"""Governed-run models built from the facade's JSON, and the invocation body."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest

from lamina import InvalidArgumentError, InvalidArgumentTypeError
from lamina._converter import make_converter, structure
from lamina.models.runs import Run, UsageSummary, invoke_body

STRICT = make_converter(strict=True)

RUN: dict[str, Any] = {
    "invocation_id": "r1",
    "run_id": "r1",
    "status": "awaiting_approval",
    "outcome": "requires_approval",
    "is_allowed": True,
    "requires_human": True,
    "withheld": True,
    "constraint_count": 3,
    "aggregated_conditions": [{"kind": "approval", "required": True}],
    "output": {
        "exit_code": 0,
        "commit_id": None,
        "status": "done",
        "status_reason": "awaiting_approval",
        "error_message": "",
        "web_url": "http://h/approvals/s1",
    },
    "approval_id": "s1",
    "evidence_pack_id": "p1",
    "evidence_pack_s3_key": "evidence/acme/data/p1.zip",
    "evidence_pack_chain_hash": "ab",
    "abp_id": "a1",
    "sandbox_id": "sb1",
    "payload_sha256": "cd",
    "created_at": "2026-01-02T03:04:05Z",
}


def test_a_run_is_an_invoke_result_with_its_status() -> None:
    run = structure(STRICT, RUN, Run)
    assert run.output is not None and run.output.web_url == "http://h/approvals/s1"
    assert run.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert not run.is_terminal
    for status in ("succeeded", "failed", "blocked"):
        assert structure(STRICT, {**RUN, "status": status}, Run).is_terminal
    denied = {**RUN, "output": None, "sandbox_id": None, "approval_id": None}
    assert structure(STRICT, denied, Run).output is None


def test_the_usage_summary_reads_the_documented_shape() -> None:
    data = {
        "tenant_id": "o1",
        "organization": "acme",
        "as_of": "2026-01-02T03:04:05.123456Z",
        "repositories": 3,
        "objects": {"count": 120, "bytes": 48213},
        "commits": 57,
        "sandbox_runs": 12,
        "sandbox_seconds": 31,
        "governed_runs": {"total": 2, "by_outcome": {"completed": 1, "denied": 1}},
        "evidence_packs": [
            {
                "id": "p1",
                "kind": "sandbox_run",
                "repository": "acme/data",
                "subject_id": "sb1",
                "commit_id": None,
                "created_at": "2026-01-02T03:04:05Z",
                "chain_hash": "ab",
            }
        ],
        "evidence_packs_page": {
            "limit": 50,
            "offset": 0,
            "total": 1,
            "by_kind": {"sandbox_run": 1},
        },
    }
    summary = structure(STRICT, data, UsageSummary)
    assert (summary.objects.bytes, summary.sandbox_seconds) == (48213, 31.0)
    assert summary.governed_runs.by_outcome == {"completed": 1, "denied": 1}
    assert [pack.id for pack in summary.evidence_packs] == ["p1"]
    assert summary.evidence_packs_page.by_kind == {"sandbox_run": 1}


def test_the_invocation_body() -> None:
    assert invoke_body(None) == {"payload": {}}
    assert invoke_body({"a": [1, "ü"]}) == {"payload": {"a": [1, "ü"]}}
    with pytest.raises(InvalidArgumentTypeError, match="mapping"):
        invoke_body(["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="not JSON"):
        invoke_body({"when": datetime.now(timezone.utc)})
    with pytest.raises(InvalidArgumentError, match="not JSON"):
        invoke_body({"x": math.nan})
    with pytest.raises(InvalidArgumentError, match="keys must be str"):
        invoke_body({1: "one"})  # type: ignore[dict-item]
