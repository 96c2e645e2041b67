"""Canonical JSON must be byte for byte what the standard library writes in that form: node ids
are hashes of these bytes, so trees written before and after must agree."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lamina_server.versioning import canonical

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=30,
)


def _standard(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@given(_VALUES)
def test_dumps_is_the_standard_librarys_canonical_form(value: Any) -> None:
    assert canonical.dumps(value) == _standard(value)


@given(_VALUES)
def test_loads_reads_back_what_dumps_wrote(value: Any) -> None:
    assert canonical.loads(canonical.dumps(value)) == value
    assert canonical.loads(canonical.dumps(value).decode()) == value


def test_control_characters_and_separators_are_escaped_alike() -> None:
    value = {'\u2028 \x00 \x1f \x7f \t \n "q" \\': ["é", "😀", "\ufeff"], "a": {"z": 1, "b": 2}}
    assert canonical.dumps(value) == _standard(value)
