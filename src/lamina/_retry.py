"""The retry policy, pure: which failures are retried and how long to wait before the next try.

- Retried: connection errors and timeouts, 408, 429 and every 5xx, at most ``max_retries`` times.
- Requests that are not idempotent (POST, PATCH) are retried only when the server cannot have
  acted on them: the connection was never made, or the server refused the request before
  handling it (408, 429). With an ``Idempotency-Key`` header they are retried like a GET.
- The wait honours ``Retry-After`` (delta-seconds or an HTTP-date), capped at
  :data:`RETRY_AFTER_CAP`; otherwise it is full-jitter exponential backoff:
  ``uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

#: Longest wait a ``Retry-After`` header can ask for (seconds).
RETRY_AFTER_CAP = 60.0
#: First backoff ceiling (seconds); it doubles per attempt up to :data:`BACKOFF_CAP`.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Statuses that say the server refused the request before acting on it.
_NOT_ACTED_STATUSES = frozenset({408, 429})


def is_idempotent(method: str, header_names: Iterable[str]) -> bool:
    """Safe to send twice: an idempotent method, or any request with an ``Idempotency-Key``
    header (``header_names`` in any case)."""
    return method.upper() in IDEMPOTENT_METHODS or any(
        name.lower() == "idempotency-key" for name in header_names
    )


def is_retryable_status(status_code: int) -> bool:
    """408, 429 and 5xx, except 501: a server that does not implement a request (an
    extension it no longer offers, multipart on a store without it) will not the next time."""
    if status_code == 501:
        return False
    return status_code >= 500 or status_code in _NOT_ACTED_STATUSES


def should_retry(
    *,
    attempt: int,
    max_retries: int,
    idempotent: bool,
    status_code: int | None = None,
    connect_failed: bool = False,
) -> bool:
    """Whether to try again after a failed attempt.

    ``attempt`` counts the retries already made (0 after the first try). ``status_code`` is the
    error status, or ``None`` when the request failed in transport; ``connect_failed`` says
    the connection was never established (so the server cannot have seen the request).
    """
    if attempt >= max_retries:
        return False
    if status_code is None:
        return connect_failed or idempotent
    if not is_retryable_status(status_code):
        return False
    return idempotent or status_code in _NOT_ACTED_STATUSES


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or ``None`` when absent or unusable.

    Accepts delta-seconds (``"2"``, ``"1.5"``) and an HTTP-date (a date in the past means 0).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now)
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def retry_delay(
    attempt: int,
    retry_after: str | None = None,
    *,
    now: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    hinted = parse_retry_after(retry_after, now=now)
    if hinted is not None:
        return min(hinted, RETRY_AFTER_CAP)
    return rand() * min(BACKOFF_CAP, math.ldexp(BACKOFF_BASE, min(attempt, 32)))
