"""A pure evaluator of the policy DSL, so that :func:`lamina.can_i` answers without trying.

A policy text is one rule per line::

    # readers of the raw data
    GetObject(repository="acme/data*", path="raw/*")
    ListObjects(repository="acme/data*")
    Deny PutObject()

- ``Action(...)`` allows the action; ``Deny Action(...)`` denies it, and a matching ``Deny``
  wins over any allowing line, in any policy. What no line allows is denied.
- The conditions are ``repository="org/repo"`` and ``path="prefix/*"``; a rule without
  ``repository=`` matches every repository of the organization (and the organization itself),
  one without ``path=`` every path. A rule with ``repository=`` never matches a resource that
  is not a repository; ``path=`` is matched against the resource's path, which is ``""`` when
  it names none (a listing of a whole repository), as the server does.
- ``*`` matches any run of characters, ``/`` included.
- ``#`` starts a comment (outside quotes); blank lines are ignored.

This is the server's grammar (docs/policies.md); the server's validator also checks action
names and which actions take which condition, which evaluation needs no more than an exact
match. A Rego policy is not read here: it raises :class:`~lamina.PolicySyntaxError`.

Resources are written as the server's 403 messages write them: ``"org"``, ``"org/repo"`` or
``"org/repo/path/in/repo"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from attrs import frozen

from lamina._errors import InvalidArgumentError, PolicySyntaxError
from lamina.models.policies import Explanation

__all__ = ["Resource", "Rule", "SourcePolicy", "evaluate", "matches", "parse_policy"]

_CONDITIONS = ("repository", "path")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@frozen
class Rule:
    """One line of a policy: ``deny`` or allow ``action`` under its conditions."""

    line: int
    text: str
    action: str
    deny: bool = False
    repository: str | None = None
    path: str | None = None


@frozen
class SourcePolicy:
    """A policy to evaluate: its id, name and text."""

    id: str
    name: str
    text: str


@frozen
class Resource:
    """What an action is on: an organization, a repository of it, or a path in one."""

    organization: str
    repository: str | None = None
    path: str | None = None

    @classmethod
    def parse(cls, resource: str) -> Resource:
        """``"org"``, ``"org/repo"`` or ``"org/repo/path"``."""
        if not isinstance(resource, str):
            raise InvalidArgumentError(
                f"a resource is a str 'org', 'org/repo' or 'org/repo/path', got {resource!r}"
            )
        org, _, rest = resource.partition("/")
        repo, _, path = rest.partition("/")
        if not org or (rest and not repo):
            raise InvalidArgumentError(
                f"a resource is 'org', 'org/repo' or 'org/repo/path', got {resource!r}"
            )
        return cls(org, repo or None, path or None)

    def __str__(self) -> str:
        return "/".join(part for part in (self.organization, self.repository, self.path) if part)


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches ``pattern`` as a whole, ``*`` matching any run of characters."""
    return _pattern(pattern).fullmatch(value) is not None


class _Line:
    """A cursor over one line, for the parser's error positions (columns count from 1)."""

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text
        self.pos = 0

    def error(self, message: str) -> PolicySyntaxError:
        return PolicySyntaxError(message, line=self.number, column=self.pos + 1)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text) or self.text[self.pos] == "#"

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end of the line"
            raise self.error(f"expected {char!r}, found {found}")
        self.pos += 1

    def word(self, pattern: re.Pattern[str], what: str) -> str:
        self.skip_space()
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise self.error(f"expected {what}")
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'"):
            raise self.error("expected a quoted string")
        self.pos += 1
        value: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == quote:
                return "".join(value)
            if char == "\\" and self.pos < len(self.text):
                char = self.text[self.pos]
                self.pos += 1
            value.append(char)
        raise self.error("unterminated string")


def _parse_line(number: int, text: str) -> Rule | None:
    line = _Line(number, text)
    if line.at_end():
        return None
    name = line.word(_NAME, "an action name")
    deny = False
    if name == "Deny" and not line.at_end() and line.peek() != "(":
        deny = True
        name = line.word(_NAME, "an action name")
    line.expect("(")
    conditions: dict[str, str] = {}
    while line.peek() != ")":
        start = line.pos
        key = line.word(_KEY, "a condition (repository= or path=) or ')'")
        if key not in _CONDITIONS:
            line.pos = start
            line.skip_space()
            raise line.error(f"unknown condition {key!r} (expected repository or path)")
        if key in conditions:
            line.pos = start
            line.skip_space()
            raise line.error(f"condition {key!r} given twice")
        line.expect("=")
        conditions[key] = line.string()
        if line.peek() != ")":
            line.expect(",")
    line.expect(")")
    if not line.at_end():
        raise line.error("unexpected text after ')'")
    return Rule(
        line=number,
        text=text.strip(),
        action=name,
        deny=deny,
        repository=conditions.get("repository"),
        path=conditions.get("path"),
    )


def parse_policy(text: str) -> list[Rule]:
    """The rules of a policy text; :class:`~lamina.PolicySyntaxError` at the first bad line."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        rule = _parse_line(number, line)
        if rule is not None:
            rules.append(rule)
    return rules


def _rule_matches(rule: Rule, action: str, resource: Resource) -> bool:
    if rule.action != action:
        return False
    if rule.repository is not None and (
        resource.repository is None
        or not matches(rule.repository, f"{resource.organization}/{resource.repository}")
    ):
        return False
    return rule.path is None or matches(rule.path, resource.path or "")


def evaluate(
    policies: Iterable[SourcePolicy], action: str, resource: str | Resource
) -> Explanation:
    """Whether ``policies`` allow ``action`` on ``resource``, and which line decides: the
    first matching ``Deny`` line, else the first matching allowing line, else nothing
    (denied). Every policy is parsed first: a :class:`~lamina.PolicySyntaxError` (its message
    names the policy) rather than an answer that skipped a line."""
    target = resource if isinstance(resource, Resource) else Resource.parse(resource)
    parsed: list[tuple[SourcePolicy, Sequence[Rule]]] = []
    for policy in policies:
        try:
            parsed.append((policy, parse_policy(policy.text)))
        except PolicySyntaxError as exc:
            raise PolicySyntaxError(
                exc.detail, line=exc.line, column=exc.column, policy=policy.name
            ) from None
    allowing: tuple[SourcePolicy, Rule] | None = None
    for policy, rules in parsed:
        for rule in rules:
            if not _rule_matches(rule, action, target):
                continue
            if rule.deny:
                return _explain(False, action, target, policy, rule)
            if allowing is None:
                allowing = (policy, rule)
    if allowing is not None:
        return _explain(True, action, target, *allowing)
    return Explanation(
        allowed=False,
        action=action,
        resource=str(target),
        reason=f"no policy allows {action} on {target}",
    )


def _explain(
    allowed: bool, action: str, resource: Resource, policy: SourcePolicy, rule: Rule
) -> Explanation:
    verb = "allows" if allowed else "denies"
    return Explanation(
        allowed=allowed,
        action=action,
        resource=str(resource),
        reason=f"policy {policy.name!r} line {rule.line} ({rule.text}) {verb} it",
        policy_id=policy.id,
        policy_name=policy.name,
        line=rule.line,
        rule=rule.text,
    )
