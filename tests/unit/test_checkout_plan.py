"""The layout of a checkout's tree, from a listing (no disk)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lamina_server.sandboxes.checkouts import CheckoutError, Skipped, normalize_prefix, plan
from lamina_server.versioning import Entry


def _entry(address: str) -> Entry:
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return Entry(address, 1, "e", "text/plain", when, {})


def test_prefixes_are_folders() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("data") == "data/"
    assert normalize_prefix("data/sub/") == "data/sub/"
    for bad in ("/data", "a//b", "..", "a/../b", "a\x00"):
        with pytest.raises(CheckoutError):
            normalize_prefix(bad)


def test_plan_lists_folders_parents_first_and_files_relative_to_the_prefix() -> None:
    entries = [(p, _entry(p)) for p in ["d/a", "d/b/c", "d/b/d/e", "d/z"]]
    laid_out = plan(entries, "d/")
    assert laid_out.folders == ["b", "b/d"]
    assert laid_out.files == [
        ("a", "d/a", 1),
        ("b/c", "d/b/c", 1),
        ("b/d/e", "d/b/d/e", 1),
        ("z", "d/z", 1),
    ]
    assert laid_out.skipped == []


def test_an_object_that_is_also_a_folder_and_long_segments_are_skipped() -> None:
    long = "é" * 128  # 256 bytes of UTF-8
    entries = [(p, _entry(p)) for p in ["a", "a.txt", "a/b", f"{long}/x", "b"]]
    laid_out = plan(entries, "")
    assert [f[0] for f in laid_out.files] == ["a.txt", "a/b", "b"]
    assert laid_out.skipped == [
        Skipped("a", "it is also the folder of other objects"),
        Skipped(f"{long}/x", "a path segment is longer than 255 bytes"),
    ]
