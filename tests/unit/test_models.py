"""Models built by the converter from API JSON, and the pure helpers beside them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from lamina._converter import make_converter, structure
from lamina._deferred import AsyncDeferred, Deferred
from lamina._errors import LaminaError, SerializationError
from lamina.models import (
    CommitData,
    Entry,
    EntryRecord,
    ListingEntry,
    Membership,
    ObjectMetadata,
    OrganizationData,
    RepositoryData,
    ResultList,
    TransferProgress,
)
from lamina.models.objects import (
    object_metadata_from_headers,
    parse_http_date,
    range_header,
    unquote_etag,
)

STRICT = make_converter(strict=True)

ENTRY = {
    "size": 5,
    "e_tag": "5d41402abc4b2a76b9719d911017c592",
    "content_type": "text/plain",
    "last_modified": "2026-01-02T03:04:05.123456789Z",
    "metadata": {"owner": "ana"},
}


def test_listing_entry_with_object_and_prefix() -> None:
    listed = structure(
        STRICT,
        [
            {"path": "a.txt", "type": "object", "entry": ENTRY},
            {"path": "dir/", "type": "prefix"},
            {"path": "gone", "type": "object", "status": "removed"},
        ],
        list[ListingEntry],
    )
    first = listed[0]
    assert first.entry == Entry(
        size=5,
        e_tag="5d41402abc4b2a76b9719d911017c592",
        content_type="text/plain",
        last_modified=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        metadata={"owner": "ana"},
    )
    assert listed[1] == ListingEntry(path="dir/", type="prefix")
    assert listed[2].status == "removed" and listed[2].entry is None


def test_entry_record_tombstone() -> None:
    assert structure(STRICT, {"path": "x", "entry": None}, EntryRecord) == EntryRecord("x")


def test_commit_data_full_and_minimal() -> None:
    full = structure(
        STRICT,
        {
            "id": "c1",
            "committer": "admin",
            "committer_type": "user",
            "committer_id": "u1",
            "message": "m",
            "creation_date": "2026-01-02T03:04:05Z",
            "parents": ["c0"],
            "metadata": {"k": "v"},
            "is_stale": False,
            "meta_range_id": "r",
            "object_count": 3,
            "total_size": 10,
        },
        CommitData,
    )
    assert full.parents == ("c0",) and full.object_count == 3
    assert structure(STRICT, {"id": "c2"}, CommitData) == CommitData(id="c2")


def test_repository_organization_and_membership() -> None:
    repo = structure(
        STRICT,
        {
            "id": "r",
            "organization_id": "o",
            "name": "data",
            "description": "",
            "visibility": "private",
            "retention_days": 14,
            "session_max_duration_days": None,
            "created_by_type": "user",
            "created_by": "u",
            "created_at": "2026-01-02T03:04:05+02:00",
        },
        RepositoryData,
    )
    assert repo.retention_days == 14 and repo.created_at is not None
    assert repo.created_at.utcoffset() is not None
    orgs = structure(
        STRICT,
        {"results": [{"id": "o", "name": "acme", "display_name": "Acme", "created_at": None}]},
        ResultList[OrganizationData],
    )
    assert orgs.results == [OrganizationData(id="o", name="acme", display_name="Acme")]
    member = structure(
        STRICT,
        {"organization_id": "o", "user_id": "u", "username": "ana", "joined_at": None},
        Membership,
    )
    assert member.username == "ana"


@pytest.mark.parametrize(
    ("data", "model"),
    [
        ({"path": "a"}, ListingEntry),  # type missing
        ({"path": "a", "type": "object", "entry": {"size": "5"}}, ListingEntry),
        ({"name": "no id"}, RepositoryData),
        ("not an object", CommitData),
    ],
)
def test_bad_bodies_raise_serialization_error(data: Any, model: type[Any]) -> None:
    with pytest.raises(SerializationError):
        structure(make_converter(), data, model)


def test_unknown_keys_are_ignored_by_default() -> None:
    data = {"id": "c", "brand_new_field": 1}
    assert structure(make_converter(), data, CommitData) == CommitData(id="c")
    with pytest.raises(SerializationError):
        structure(STRICT, data, CommitData)


_HEADERS = [
    ("ETag", '"abc"'),
    ("Content-Type", "text/plain"),
    ("Content-Length", "12"),
    ("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT"),
    ("X-Tilde-Meta-Owner", "ana"),
    ("x-tilde-meta-tier", "2"),
    ("X-Tilde-Meta-", "no key"),
    ("X-Request-Id", "r"),
]


@pytest.mark.parametrize("mapping", [httpx.Headers, CIMultiDictProxy], ids=["httpx", "aiohttp"])
def test_object_metadata_from_headers(mapping: Callable[[Any], Mapping[str, str]]) -> None:
    headers = mapping(_HEADERS if mapping is httpx.Headers else CIMultiDict(_HEADERS))
    assert object_metadata_from_headers(headers) == ObjectMetadata(
        etag="abc",
        content_type="text/plain",
        content_length=12,
        last_modified=datetime(2026, 10, 21, 7, 28, tzinfo=timezone.utc),
        metadata={"owner": "ana", "tier": "2"},
    )
    garbage = httpx.Headers({"Last-Modified": "garbage"})
    assert object_metadata_from_headers(garbage) == ObjectMetadata()


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate, the form servers send
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form
    ],
)
def test_http_dates_in_every_form_parse_to_aware_utc(text: str) -> None:
    assert parse_http_date(text) == datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)
    parsed = parse_http_date(text)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "garbage", "Sun, 31 Feb 1994 08:49:37 GMT"])
def test_what_is_not_an_http_date_parses_to_none(text: str) -> None:
    assert parse_http_date(text) is None


def test_etag_and_range_helpers() -> None:
    assert unquote_etag('"abc-2"') == "abc-2"
    assert unquote_etag('W/"abc"') == "abc"
    assert unquote_etag(None) is None
    assert range_header((0, 1023)) == "bytes=0-1023"
    assert range_header((1024, None)) == "bytes=1024-"
    with pytest.raises(ValueError):
        range_header((10, 5))
    with pytest.raises(ValueError):
        range_header((-1, None))


def test_transfer_progress_is_a_value() -> None:
    assert TransferProgress(1, 2, 0, 1) == TransferProgress(
        bytes_done=1, bytes_total=2, files_done=0, files_total=1
    )


class _AsyncThing(AsyncDeferred):
    def __init__(self) -> None:
        self.prepared = 0

    def _is_ready(self) -> bool:
        return self.prepared > 0

    async def _prepare(self) -> None:
        self.prepared += 1


class _Thing(Deferred):
    def __init__(self) -> None:
        self.prepared = 0

    def _is_ready(self) -> bool:
        return self.prepared > 0

    def _prepare(self) -> None:
        self.prepared += 1


def test_blocking_deferred_prepares_on_first_need() -> None:
    thing = _Thing()
    thing._require()
    thing._require()
    assert thing.prepared == 1
    assert _Thing()._started().prepared == 1


@pytest.mark.anyio
async def test_async_deferred_prepares_when_awaited() -> None:
    thing = _AsyncThing()
    assert thing._started() is thing and thing.prepared == 0
    with pytest.raises(LaminaError, match="await it first"):
        thing._require()
    assert await thing is thing
    assert thing.prepared == 1
    thing._require()
