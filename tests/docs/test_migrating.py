"""docs/migrating.md maps every public call of the installed tilde-sdk and cerebral-sdk (as
``tests/docs/sdk_calls.py`` reads them) to Lamina's, each in its package's section."""

from __future__ import annotations

import re

import pytest

from tests.docs.examples import DOCS
from tests.docs.sdk_calls import PACKAGES, public_calls

PAGE = DOCS / "migrating.md"


def _section(distribution: str) -> str:
    """The text of the page's ``## <distribution> ...`` section."""
    text = PAGE.read_text()
    match = re.search(rf"^## {re.escape(distribution)}\b.*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/migrating.md has no '## {distribution}' section"
    return match.group(0)


@pytest.mark.parametrize(("distribution", "package"), sorted(PACKAGES.items()))
def test_every_public_call_is_mapped(distribution: str, package: str) -> None:
    calls = public_calls(package)
    assert len(calls) > 100  # the introspection found the package's classes
    mapped = set(
        re.findall(r"^\| `([A-Za-z_]+\.[A-Za-z_]+)` \| \S", _section(distribution), flags=re.M)
    )
    missing = sorted(calls - mapped)
    assert missing == [], f"calls of {distribution} not in docs/migrating.md: {missing}"


@pytest.mark.parametrize(("distribution", "package"), sorted(PACKAGES.items()))
def test_every_mapped_call_exists(distribution: str, package: str) -> None:
    """No row names a call the package does not have (a typo, or a call it dropped)."""
    mapped = set(
        re.findall(r"^\| `([A-Za-z_]+\.[A-Za-z_]+)` \| \S", _section(distribution), flags=re.M)
    )
    assert sorted(mapped - public_calls(package)) == []
