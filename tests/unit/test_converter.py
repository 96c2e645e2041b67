"""The cattrs converter: round trips, forward compatibility, strictness and error paths."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

import pytest
from attrs import field, frozen

from lamina import SerializationError
from lamina._converter import format_datetime, make_converter, parse_datetime, structure
from lamina._types import Envelope


@frozen
class Entry:
    size: int
    etag: str = ""
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(factory=dict)


@frozen
class Item:
    path: str
    type: Literal["object", "prefix"]
    entry: Entry | None = None
    ratio: float = 0.0
    hidden: bool = False


WIRE = {
    "path": "a/b.txt",
    "type": "object",
    "entry": {
        "size": 5,
        "etag": "abc",
        "last_modified": "2026-01-02T03:04:05.123456Z",
        "metadata": {"k": "v"},
    },
    "ratio": 0.5,
    "hidden": True,
}


def test_round_trip() -> None:
    converter = make_converter(strict=True)
    item = structure(converter, WIRE, Item)
    assert item.entry is not None
    assert item.entry.last_modified == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert converter.unstructure(item) == WIRE
    assert structure(converter, converter.unstructure(item), Item) == item


def test_unknown_keys_are_ignored_unless_strict() -> None:
    data = {**WIRE, "added_in_v2": 1, "entry": {**WIRE["entry"], "new": "x"}}  # type: ignore[dict-item]
    assert structure(make_converter(), data, Item).path == "a/b.txt"
    with pytest.raises(SerializationError, match=r"extra fields found \(added_in_v2\) @ \$"):
        structure(make_converter(strict=True), data, Item)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"type": "object"}, r"required field missing @ \$\.path"),
        ({**WIRE, "entry": {"etag": "x"}}, r"required field missing @ \$\.entry\.size"),
        ({**WIRE, "path": 5}, r"@ \$\.path"),
        ({**WIRE, "entry": {"size": "5"}}, r"@ \$\.entry\.size"),
        ({**WIRE, "entry": {"size": True}}, r"@ \$\.entry\.size"),
        ({**WIRE, "ratio": "0.5"}, r"@ \$\.ratio"),
        ({**WIRE, "hidden": "false"}, r"@ \$\.hidden"),
        ({**WIRE, "type": "folder"}, r"@ \$\.type"),
        ({**WIRE, "entry": "not an object"}, r"@ \$\.entry"),
        ({**WIRE, "entry": {"size": 1, "metadata": {"k": 1}}}, r"@ \$\.entry\.metadata\['k'\]"),
        (
            {**WIRE, "entry": {"size": 1, "last_modified": "yesterday"}},
            r"@ \$\.entry\.last_modified",
        ),
        ("a string", r"expected an object, got str .* @ \$"),
        (None, r"@ \$"),
    ],
)
def test_bad_data_raises_serialization_error_with_the_path(data: object, where: str) -> None:
    with pytest.raises(SerializationError, match=where):
        structure(make_converter(), data, Item)


@frozen
class Commit:
    id: str
    parents: tuple[str, ...] = ()
    tags: list[str] = field(factory=list)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"id": "c1", "parents": "c0"}, r"@ \$\.parents"),
        ({"id": "c1", "tags": "ab"}, r"@ \$\.tags"),
        ({"id": "c1", "parents": {"c0": 1}}, r"@ \$\.parents"),
        ({"id": "c1", "tags": ["a", 1]}, r"@ \$\.tags\[1\]"),
    ],
)
def test_sequences_are_built_only_from_arrays(data: object, where: str) -> None:
    with pytest.raises(SerializationError, match=where):
        structure(make_converter(), data, Commit)
    with pytest.raises(SerializationError, match=r"expected an array, got str 'c0' @ \$"):
        structure(make_converter(), "c0", tuple[str, ...])
    commit = structure(make_converter(), {"id": "c1", "parents": ["c0"], "tags": ["t"]}, Commit)
    assert (commit.parents, commit.tags) == (("c0",), ["t"])


def test_ints_are_accepted_as_floats() -> None:
    assert structure(make_converter(), {**WIRE, "ratio": 1}, Item).ratio == 1.0


def test_generic_envelope_reports_the_path_inside_results() -> None:
    data = {"results": [{"size": 1}, {"size": "x"}], "pagination": {"has_more": False}}
    with pytest.raises(SerializationError, match=r"@ \$\.results\[1\]\.size"):
        structure(make_converter(), data, Envelope[Entry])
    ok = structure(make_converter(), {**data, "results": [{"size": 1}]}, Envelope[Entry])
    assert ok.results == [Entry(size=1)]
    assert ok.pagination.has_more is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)),
        (
            "2026-01-02T03:04:05.123456789Z",
            datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        ),
        (
            "2026-01-02T03:04:05.1+05:30",
            datetime(2026, 1, 2, 3, 4, 5, 100000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "2026-01-02 03:04:05-07:00",
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7))),
        ),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text", ["2026-01-02", "2026-01-02T03:04Z", "2026-01-02T03:04:05.1234567890Z", "x", ""]
)
def test_parse_rejects_what_is_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_datetime(text)


def test_format_datetime_is_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_datetime(datetime(2026, 1, 2, 5, 0, tzinfo=plus_two)) == "2026-01-02T03:00:00Z"
    assert format_datetime(datetime(2026, 1, 2, 3, 0, 0, 5)) == "2026-01-02T03:00:00.000005Z"
