"""How an :class:`Entry` is stored: a compact JSON array, the same in tree leaves and staging.

``[address, size, etag, content_type, last_modified_us, metadata]``. The tree compares these
arrays to tell modified entries from unchanged ones and reads ``size`` for its byte totals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from lamina_server.versioning import canonical
from lamina_server.versioning.models import Entry

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    return to_micros(datetime.now(timezone.utc))


def entry_value(entry: Entry) -> list[Any]:
    return [
        entry.address,
        entry.size,
        entry.etag,
        entry.content_type,
        to_micros(entry.last_modified),
        dict(entry.metadata),
    ]


def value_entry(value: list[Any]) -> Entry:
    address, size, etag, content_type, modified, meta = value
    return Entry(
        address=address,
        size=size,
        etag=etag,
        content_type=content_type,
        last_modified=from_micros(modified),
        metadata=meta,
    )


value_size: Callable[[list[Any]], int] = itemgetter(1)  # a value's byte size (C-level)


def dump_json(value: Any) -> str:
    return canonical.dumps(value).decode()
