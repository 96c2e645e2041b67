"""The sandbox trigger matcher and condition rules: pure functions, no I/O."""

from __future__ import annotations

import pytest

from lamina_server.sandboxes.dispatch import trigger_depth, verdict
from lamina_server.sandboxes.triggers import (
    TriggerInvalid,
    check_sandbox_config,
    matched_paths,
    normalize_conditions,
    time_ordered_id,
)

CHANGES = [
    ("data/a.csv", "added"),
    ("data/b.csv", "modified"),
    ("data/c.csv", "removed"),
    ("docs/readme.md", "modified"),
    ("model.bin", "added"),
]


def prefix(value: str, diff_type: str = "any") -> dict[str, str]:
    return {"type": "prefix", "prefix": value, "diff_type": diff_type}


def exact(value: str, diff_type: str = "any") -> dict[str, str]:
    return {"type": "path_exact", "path": value, "diff_type": diff_type}


@pytest.mark.parametrize(
    ("diff_type", "expected"),
    [
        ("any", ["data/a.csv", "data/b.csv", "data/c.csv"]),
        ("added", ["data/a.csv"]),
        ("removed", ["data/c.csv"]),
        ("changed", ["data/b.csv"]),
        ("modified", ["data/b.csv"]),  # the official client's tests' word for "changed"
    ],
)
def test_prefix_condition_filters_by_diff_type(diff_type: str, expected: list[str]) -> None:
    assert matched_paths([prefix("data/", diff_type)], CHANGES) == expected


@pytest.mark.parametrize(
    ("diff_type", "path", "expected"),
    [
        ("any", "data/b.csv", ["data/b.csv"]),
        ("changed", "data/b.csv", ["data/b.csv"]),
        ("modified", "data/b.csv", ["data/b.csv"]),
        ("added", "data/b.csv", []),
        ("removed", "data/c.csv", ["data/c.csv"]),
        ("added", "model.bin", ["model.bin"]),
        ("any", "data", []),  # exact: a prefix of a changed path is not that path
        ("any", "missing.txt", []),
    ],
)
def test_path_exact_condition(diff_type: str, path: str, expected: list[str]) -> None:
    assert matched_paths([exact(path, diff_type)], CHANGES) == expected


def test_diff_type_defaults_to_any() -> None:
    assert matched_paths([{"type": "prefix", "prefix": "docs/"}], CHANGES) == ["docs/readme.md"]


def test_any_condition_matching_is_enough_and_paths_are_listed_once() -> None:
    conditions = [prefix("docs/"), exact("model.bin", "added"), prefix("docs/readme")]
    assert matched_paths(conditions, CHANGES) == ["docs/readme.md", "model.bin"]


def test_nothing_matches_nothing() -> None:
    assert matched_paths([prefix("logs/")], CHANGES) == []
    assert matched_paths([prefix("data/")], []) == []


def test_normalize_conditions_keeps_the_field_of_the_type_and_reads_modified_as_changed() -> None:
    assert normalize_conditions(
        [
            {"type": "prefix", "prefix": "a/", "path": "ignored"},
            {"type": "path_exact", "path": "b", "diff_type": "modified"},
        ]
    ) == [
        {"type": "prefix", "prefix": "a/", "diff_type": "any"},
        {"type": "path_exact", "path": "b", "diff_type": "changed"},
    ]


@pytest.mark.parametrize(
    ("conditions", "field"),
    [
        ([], "conditions"),
        ([prefix("a/")] * 11, "conditions"),
        ([{"type": "prefix"}], "conditions.0.prefix"),
        ([prefix("a/"), {"type": "path_exact", "prefix": "b"}], "conditions.1.path"),
        ([{"type": "path_exact", "path": ""}], "conditions.0.path"),
        ([{"type": "glob", "prefix": "a"}], "conditions.0.type"),
        ([prefix("a/", "renamed")], "conditions.0.diff_type"),
    ],
)
def test_conditions_that_cannot_match_are_refused_naming_the_field(
    conditions: list[dict[str, str]], field: str
) -> None:
    with pytest.raises(TriggerInvalid) as caught:
        normalize_conditions(conditions)
    assert caught.value.field == field
    assert str(caught.value).startswith(field + " ")


def test_sandbox_config_needs_an_image_and_an_absolute_mountpoint() -> None:
    assert check_sandbox_config({"image": "python:3.12", "command": None}) == {
        "image": "python:3.12"
    }
    for config, field in [
        ({"image": " "}, "sandbox_config.image"),
        ({}, "sandbox_config.image"),
        ({"image": "x", "mountpoint": "data"}, "sandbox_config.mountpoint"),
    ]:
        with pytest.raises(TriggerInvalid) as caught:
            check_sandbox_config(config)
        assert caught.value.field == field


def test_loop_safety_verdicts() -> None:
    assert verdict("t1", {}) is None
    assert verdict("t1", {"lamina.trigger_id": "t2", "lamina.trigger_depth": "2"}) is None
    assert verdict("t1", {"lamina.trigger_id": "t1", "lamina.trigger_depth": "1"}) == (
        "self_triggered"
    )
    assert verdict("t1", {"lamina.trigger_id": "t2", "lamina.trigger_depth": "3"}) == "max_depth"
    assert trigger_depth({"lamina.trigger_depth": "-1"}) == 0
    assert trigger_depth({"lamina.trigger_depth": "two"}) == 0


def test_run_ids_are_uuid7_ordered_by_time() -> None:
    first = time_ordered_id()
    later = [time_ordered_id() for _ in range(5)]
    assert first[14] == "7" and first[19] in "89ab"
    assert all(first[:13] <= other[:13] for other in later)
