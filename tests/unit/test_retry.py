"""The retry policy: which failures are retried, and the wait before each retry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from lamina._retry import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    is_idempotent,
    parse_retry_after,
    retry_delay,
    should_retry,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses_are_retried_for_idempotent_requests(status: int) -> None:
    assert should_retry(attempt=0, max_retries=2, idempotent=True, status_code=status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 412, 422, 423, 301, 304])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not should_retry(attempt=0, max_retries=2, idempotent=True, status_code=status)


def test_retries_stop_at_max_retries() -> None:
    assert should_retry(attempt=1, max_retries=2, idempotent=True, status_code=503)
    assert not should_retry(attempt=2, max_retries=2, idempotent=True, status_code=503)
    assert not should_retry(attempt=0, max_retries=0, idempotent=True, connect_failed=True)


def test_non_idempotent_requests_retry_only_where_the_server_cannot_have_acted() -> None:
    assert not should_retry(attempt=0, max_retries=2, idempotent=False, status_code=503)
    assert not should_retry(attempt=0, max_retries=2, idempotent=False, status_code=None)
    assert should_retry(attempt=0, max_retries=2, idempotent=False, connect_failed=True)
    assert should_retry(attempt=0, max_retries=2, idempotent=False, status_code=429)
    assert should_retry(attempt=0, max_retries=2, idempotent=False, status_code=408)


def test_transport_failures_are_retried_for_idempotent_requests() -> None:
    assert should_retry(attempt=0, max_retries=1, idempotent=True, status_code=None)


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("head", {}, True),
        ("PUT", {}, True),
        ("DELETE", {}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
        ("POST", {"idempotency-key": "k1"}, True),
    ],
)
def test_is_idempotent(method: str, headers: dict[str, str], expected: bool) -> None:
    assert is_idempotent(method, headers) is expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("1", 1.0), ("0", 0.0), (" 2.5 ", 2.5), ("120", 120.0)],
)
def test_retry_after_delta_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize("header", [None, "", "-1", "nan", "soon", "Mon, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header) is None


def test_retry_after_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=NOW) == 7.0
    earlier = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    assert retry_delay(0, "3", rand=lambda: 1.0) == 3.0
    assert retry_delay(5, "3", rand=lambda: 1.0) == 3.0
    assert retry_delay(0, "3600", rand=lambda: 1.0) == RETRY_AFTER_CAP
    assert retry_delay(0, "inf") == RETRY_AFTER_CAP
    in_an_hour = format_datetime(NOW + timedelta(hours=1), usegmt=True)
    assert retry_delay(0, in_an_hour, now=NOW) == RETRY_AFTER_CAP


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    ceilings = [retry_delay(attempt, rand=lambda: 1.0) for attempt in range(8)]
    assert ceilings == [min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) for attempt in range(8)]
    assert ceilings[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert retry_delay(3, rand=lambda: 0.0) == 0.0
    assert retry_delay(10_000, rand=lambda: 1.0) == BACKOFF_CAP


def test_backoff_samples_stay_within_bounds() -> None:
    for attempt in range(6):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        samples = [retry_delay(attempt) for _ in range(200)]
        assert all(0.0 <= sample <= ceiling for sample in samples)
        assert max(samples) > ceiling / 2  # jittered over the range, not a constant
