"""The built-in policies, by name: DSL text compiled once, at import.

- ``OrgAdmin``: every action, on every repository of the organization.
- ``ReadOnly``: every read of repositories, objects, commits, sessions and sandboxes (the
  ``List*`` and ``Get*`` actions on them); not ``GetSecret``, not the organization's members.
- ``ReadWrite``: ``ReadOnly``, plus writing through sessions (create, commit, roll back), writing
  and deleting objects, and running sandboxes (create, exec, cancel, finish).

``docs/policies.md`` lists them with their text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lamina_server.authz.actions import Action
from lamina_server.authz.policy import CompiledPolicy, compile_policy

__all__ = ["BUILTIN_POLICIES", "BUILTIN_TEXTS", "builtin"]

_READ = (
    Action.GET_ORGANIZATION,
    Action.LIST_REPOSITORIES,
    Action.GET_REPOSITORY,
    Action.LIST_OBJECTS,
    Action.GET_OBJECT,
    Action.LIST_COMMITS,
    Action.GET_COMMIT,
    Action.GET_SESSION,
    Action.LIST_SANDBOXES,
    Action.GET_SANDBOX,
)
_WRITE = (
    Action.CREATE_SESSION,
    Action.COMMIT_SESSION,
    Action.ROLLBACK_SESSION,
    Action.PUT_OBJECT,
    Action.DELETE_OBJECT,
    Action.CREATE_SANDBOX,
    Action.EXEC_SANDBOX,
    Action.CANCEL_SANDBOX,
    Action.FINISH_SANDBOX,
)


def _text(heading: str, actions: tuple[Action, ...]) -> str:
    return "".join([f"# {heading}\n", *(f"{action.value}()\n" for action in actions)])


BUILTIN_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        "OrgAdmin": _text("Every action in the organization.", tuple(Action)),
        "ReadOnly": _text("Read repositories, objects, commits, sessions and sandboxes.", _READ),
        "ReadWrite": _text(
            "ReadOnly, plus writes through sessions and running sandboxes.", _READ + _WRITE
        ),
    }
)
BUILTIN_POLICIES: Mapping[str, CompiledPolicy] = MappingProxyType(
    {name: compile_policy(text, name=name) for name, text in BUILTIN_TEXTS.items()}
)


def builtin(name: str) -> CompiledPolicy | None:
    """The built-in policy called ``name``, or ``None``."""
    return BUILTIN_POLICIES.get(name)
