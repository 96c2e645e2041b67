"""The public calls of the two SDKs Lamina replaces, ``tilde-sdk`` and ``cerebral-sdk``, read
from the installed packages: what docs/migrating.md must map, one by one.

A public call is a function in the package's ``__all__`` (``tilde.configure``), or a public
method, property, classmethod or staticmethod defined on a public class of one of the
package's public modules (``Repository.session``, ``Commit.message``, ``Commit.from_dict``).
Dunder protocols (``__enter__``, ``__iter__``) are not calls; exceptions are not calls either.
``cerebral.mcp`` (the MCP server, docs/mcp.md maps its tools) is left out.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

PACKAGES = {"tilde-sdk": "tilde", "cerebral-sdk": "cerebral"}


def _public_modules(package: ModuleType) -> list[ModuleType]:
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts) or parts[1] == "mcp":
            continue
        found.append(importlib.import_module(info.name))
    return found


def public_calls(import_name: str) -> set[str]:
    """``{"tilde.configure", "Repository.session", ...}`` of the installed package."""
    package = importlib.import_module(import_name)
    calls: set[str] = set()
    for name in getattr(package, "__all__", ()):
        if inspect.isfunction(getattr(package, name)):
            calls.add(f"{import_name}.{name}")
    for module in _public_modules(package):
        for class_name, cls in vars(module).items():
            if (
                not inspect.isclass(cls)
                or cls.__module__ != module.__name__
                or class_name.startswith("_")
                or issubclass(cls, BaseException)
            ):
                continue
            for member_name, member in vars(cls).items():
                if member_name.startswith("_"):
                    continue
                if inspect.isfunction(member) or isinstance(
                    member, (property, classmethod, staticmethod)
                ):
                    calls.add(f"{class_name}.{member_name}")
    return calls
