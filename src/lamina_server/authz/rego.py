"""Rego policies (Cerebral compatibility), evaluated by OPA's language through ``regopy``.

A policy created with ``rego`` instead of ``policy_text`` is one module in ``package lamina``.
It sees the request as ``input``::

    {"action": "GetObject",
     "principal": {"type": "user", "id": "...", "name": "alice"},
     "resource": {"organization": "acme", "repository": "data", "path": "public/a.csv"}}

(``repository`` and ``path`` are ``null`` when the action has none; ``principal`` is ``null``
when the caller gave none) and decides with two rules: ``allow`` (true allows) and ``deny``
(true, or a non-empty set of messages, refuses whatever else allows; its first message is the
reason). A :class:`RegoPolicy` has the same ``match`` as a compiled DSL policy, so
:func:`lamina_server.authz.policy.evaluate` takes a mix of both.
"""

from __future__ import annotations

import json
import re
from typing import Any

from regopy import Input, Interpreter, RegoError

from lamina_server.authz.actions import Action
from lamina_server.authz.policy import Match, PolicyError, PolicyInvalid, Subject, Target

__all__ = ["PACKAGE", "RegoPolicy", "compile_rego", "validate_rego"]

PACKAGE = "lamina"
_MODULE = "policy.rego"
_QUERY = f"x = data.{PACKAGE}"
_PACKAGE_LINE = re.compile(rf"^\s*package\s+{PACKAGE}\s*(?:#.*)?$", re.MULTILINE)
# regopy reports an error as "(error <n>:<file>|<offset>|<length> (errormsg <n>:<message>) ...)".
_ERROR = re.compile(r"\(error \d+:[^|]*\|(\d+)\|\d+\s*\(errormsg \d+:([^)\n]*)\)")


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _errors_of(text: str, error: RegoError) -> list[PolicyError]:
    found = [
        PolicyError(*_position(text, int(offset)), message.strip())
        for offset, message in _ERROR.findall(str(error))
    ]
    return found or [PolicyError(1, 1, str(error).strip() or "invalid Rego")]


def _interpreter(text: str) -> Interpreter:
    interpreter = Interpreter()
    interpreter.add_module(_MODULE, text)
    return interpreter


def _decide(interpreter: Interpreter, document: dict[str, Any]) -> dict[str, Any]:
    interpreter.set_input(Input(document))
    output = str(interpreter.query(_QUERY))
    if output == "undefined":
        return {}
    decided: Any = json.loads(output)["bindings"]["x"]
    return decided if isinstance(decided, dict) else {}


def validate_rego(text: str) -> list[PolicyError]:
    """Errors of a Rego policy: syntax and compile errors (with line and column), and a module
    that is not ``package lamina``."""
    if _PACKAGE_LINE.search(text) is None:
        return [PolicyError(1, 1, f"a Rego policy must be 'package {PACKAGE}'")]
    try:
        _decide(_interpreter(text), {})
    except RegoError as error:
        return _errors_of(text, error)
    return []


class RegoPolicy:
    """A compiled Rego policy; build with :func:`compile_rego`."""

    def __init__(self, text: str, *, name: str = "") -> None:
        self.name = name
        self.text = text
        self._interpreter = _interpreter(text)

    def match(self, action: Action, target: Target, subject: Subject | None = None) -> Match | None:
        document = {
            "action": action.value,
            "principal": None
            if subject is None
            else {"type": subject.type, "id": subject.id, "name": subject.name},
            "resource": {
                "organization": target.organization,
                "repository": target.repository,
                "path": target.path,
            },
        }
        try:
            decided = _decide(self._interpreter, document)
        except RegoError as error:
            # A rule that fails at run time (e.g. a conflict) refuses: never allow on an error.
            return Match(
                deny=f"denied by Rego policy {self.name!r}: {_errors_of(self.text, error)[0]}"
            )
        deny = decided.get("deny")
        if deny is True or (isinstance(deny, list) and deny):
            why = deny[0] if isinstance(deny, list) and isinstance(deny[0], str) else "deny"
            return Match(deny=f"denied by Rego policy {self.name!r}: {why}")
        if decided.get("allow") is True:
            return Match(allow=f"allowed by Rego policy {self.name!r}")
        return None


def compile_rego(text: str, *, name: str = "") -> RegoPolicy:
    """Compiles a Rego policy; raises :class:`PolicyInvalid` when :func:`validate_rego` objects."""
    errors = validate_rego(text)
    if errors:
        raise PolicyInvalid(errors)
    return RegoPolicy(text, name=name)
