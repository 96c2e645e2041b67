"""Every public ``Async*`` class of ``lamina._async`` has a blocking twin in ``lamina._sync``
with the same public members and the same signatures (names rewritten by the generator's
rules, e.g. ``aclose`` -> ``close``, ``AsyncPager[T]`` -> ``Pager[T]``)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import lamina._async
from tests.generator import generator as _generator

_rule = _generator.Unasync(_generator.RENAMES)
#: Special methods that are part of a class's public behaviour.
_DUNDERS = frozenset(
    {"__init__", "__aenter__", "__aexit__", "__aiter__", "__anext__"}
    | {"__enter__", "__exit__", "__iter__", "__next__"}
)


def blocking(text: str) -> str:
    """``text`` with every name rewritten as the generator rewrites it."""
    return re.sub(r"[A-Za-z_][A-Za-z0-9_]*", lambda m: _rule._unasync_name(m.group()), text)


def async_classes() -> list[tuple[str, type]]:
    """(module, class) for every ``Async*`` class defined in a module of ``lamina._async``."""
    package = Path(lamina._async.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        module = importlib.import_module(name)
        found += [
            (name, value)
            for key, value in vars(module).items()
            if inspect.isclass(value) and value.__module__ == name and key.startswith("Async")
        ]
    return found


CLASSES = async_classes()


def test_the_async_package_has_classes_to_compare() -> None:
    names = {cls.__name__ for _, cls in CLASSES}
    assert {"AsyncClient", "AsyncPager"} <= names


def public_members(cls: type) -> dict[str, Any]:
    return {
        name: value
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_")
        or name
        in (
            "__aenter__",
            "__aexit__",
            "__aiter__",
            "__anext__",
            "__enter__",
            "__exit__",
            "__iter__",
            "__next__",
            "__init__",
        )
    }


def describe(member: Any) -> str:
    """A member as text: its kind and, for callables, the signature with annotations."""
    if isinstance(member, property):
        return "property"
    if callable(member):
        try:
            signature = inspect.signature(member)
        except (TypeError, ValueError):
            return "callable"
        return f"callable{signature}"
    return f"attribute {type(member).__name__}"


@pytest.mark.parametrize(("module", "cls"), CLASSES, ids=[cls.__name__ for _, cls in CLASSES])
def test_blocking_twin_has_the_same_surface(module: str, cls: type) -> None:
    twin_module = importlib.import_module(blocking(module))
    twin = getattr(twin_module, blocking(cls.__name__), None)
    assert twin is not None, f"{blocking(module)} has no {blocking(cls.__name__)}"
    expected = {
        blocking(name): blocking(describe(value)) for name, value in public_members(cls).items()
    }
    actual = {name: describe(value) for name, value in public_members(twin).items()}
    assert actual == expected
