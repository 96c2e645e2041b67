"""The policy language: one allowed (or, with ``Deny``, refused) action per line.

::

    # read everything public in acme's repositories, never the secrets
    GetObject(repository="acme/*", path="public/*")
    ListObjects()
    Deny GetObject(path="public/secret/*")

The grammar, the meaning of every action and the built-in policies are documented in
``docs/policies.md``. This module is pure: :func:`validate` reports every error with its 1-based
line and column, :func:`compile_policy` turns valid text into a :class:`CompiledPolicy` whose
statements are indexed by action with their patterns precompiled, and :func:`evaluate` decides
one request against a principal's policies (any ``Deny`` that matches wins; otherwise the first
allow that matches; otherwise refused).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lamina_server.authz.actions import Action

__all__ = [
    "ACCOUNT_ACTIONS",
    "ORGANIZATION_ACTIONS",
    "PATH_ACTIONS",
    "CompiledPolicy",
    "Match",
    "Policy",
    "PolicyError",
    "PolicyInvalid",
    "PolicySet",
    "Statement",
    "Subject",
    "Target",
    "Verdict",
    "compile_policy",
    "evaluate",
    "validate",
]

# Actions performed on no organization at all (the caller's own account).
ACCOUNT_ACTIONS = frozenset(
    {
        Action.CREATE_ORGANIZATION,
        Action.LIST_ORGANIZATIONS,
        Action.RESPOND_TO_INVITATIONS,
        Action.MANAGE_S3_CREDENTIALS,
    }
)
# Actions performed on an organization as a whole: a ``repository=`` argument cannot apply.
ORGANIZATION_ACTIONS = frozenset(
    {
        Action.GET_ORGANIZATION,
        Action.DELETE_ORGANIZATION,
        Action.LIST_MEMBERS,
        Action.MANAGE_MEMBERS,
        Action.MANAGE_GROUPS,
        Action.MANAGE_POLICIES,
        Action.MANAGE_ROLES,
        Action.MANAGE_AGENTS,
        Action.MANAGE_API_KEYS,
        Action.LIST_REPOSITORIES,
        Action.CREATE_REPOSITORY,
        Action.MANAGE_CONNECTORS,
        Action.READ_AUDIT_LOG,
        Action.EXPORT_EVIDENCE,
        Action.INVOKE_RUN,
    }
)
# Actions on objects, which carry a path (a listing's prefix): only these take ``path=``.
PATH_ACTIONS = frozenset(
    {Action.LIST_OBJECTS, Action.GET_OBJECT, Action.PUT_OBJECT, Action.DELETE_OBJECT}
)

ARGUMENTS = ("repository", "path")
_ACTIONS: Mapping[str, Action] = {action.value: action for action in Action}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\"}


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One problem in a policy's text; ``line`` and ``column`` are 1-based."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class PolicyInvalid(ValueError):
    """The text of a policy has errors; :attr:`errors` lists them all."""

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


@dataclass(frozen=True, slots=True)
class Target:
    """What a request acts on. ``repository`` is the repository's name within the organization;
    ``path`` is the object path (or a listing's prefix) of an object action, else ``None``.
    ``organization`` is empty for account actions (creating and listing organizations)."""

    organization: str
    repository: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        text = self.organization or "*"
        if self.repository is not None:
            text = f"{text}/{self.repository}"
            if self.path:
                text = f"{text}/{self.path}"
        return text


@dataclass(frozen=True, slots=True)
class Subject:
    """Who acts, as a Rego policy sees it (``input.principal``); DSL policies ignore it."""

    type: str
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Match:
    """What one policy says about a request: why it refuses it, why it allows it (either may be
    ``None``)."""

    deny: str | None = None
    allow: str | None = None


class Policy(Protocol):
    """Anything :func:`evaluate` accepts: a compiled DSL policy or a Rego one."""

    @property
    def name(self) -> str: ...

    def match(self, action: Action, target: Target, subject: Subject | None) -> Match | None:
        """``None`` when the policy says nothing about the request."""
        ...


# --- parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    line: int
    deny: bool
    action: Action
    repository: str | None
    path: str | None

    def __str__(self) -> str:
        arguments = ", ".join(
            f"{name}={_quote(value)}"
            for name, value in (("repository", self.repository), ("path", self.path))
            if value is not None
        )
        return f"{'Deny ' if self.deny else ''}{self.action.value}({arguments})"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _LineError(Exception):
    def __init__(self, column: int, message: str) -> None:
        self.column = column
        self.message = message


class _Scanner:
    """One line, read left to right; positions are 0-based, reported 1-based."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text) or self.text[self.pos] == "#"

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, message: str, pos: int | None = None) -> _LineError:
        return _LineError((self.pos if pos is None else pos) + 1, message)

    def describe(self) -> str:
        return "end of line" if self.at_end() else repr(self.peek())

    def identifier(self) -> str | None:
        found = _IDENTIFIER.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def expect(self, char: str, after: str) -> None:
        self.skip_space()
        if self.peek() != char:
            raise self.fail(f"expected {char!r} {after}, found {self.describe()}")
        self.pos += 1

    def string(self) -> str:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped not in _ESCAPES:
                    raise self.fail(
                        f"unknown escape '\\{escaped}' (only \\\" and \\\\ are escapes)"
                    )
                chars.append(_ESCAPES[escaped])
                self.pos += 2
                continue
            chars.append(char)
            self.pos += 1
        raise self.fail("unterminated string (a string must close on its own line)", start)


def _suggest(word: str, choices: Sequence[str]) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    close = lowered.get(word.lower())
    if close is None:
        close = next((c for c in choices if len(word) >= 3 and c.startswith(word)), None)
    if close is None:
        matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = lowered[matches[0]] if matches else None
    return f"; did you mean {close!r}?" if close else ""


def _parse_line(number: int, text: str) -> Statement | None:
    scanner = _Scanner(text)
    if scanner.at_end():
        return None
    start = scanner.pos
    word = scanner.identifier()
    if word is None:
        raise scanner.fail(f"expected an action name, found {scanner.describe()}")
    deny = False
    if word.lower() == "deny" and scanner.peek() in " \t":
        if word != "Deny":
            raise scanner.fail(f"write 'Deny', not {word!r}", start)
        deny = True
        scanner.skip_space()
        start = scanner.pos
        word = scanner.identifier()
        if word is None:
            raise scanner.fail(f"expected an action name after 'Deny', found {scanner.describe()}")
    action = _ACTIONS.get(word)
    if action is None:
        raise scanner.fail(f"unknown action {word!r}{_suggest(word, list(_ACTIONS))}", start)
    scanner.expect("(", f"after {word}")
    arguments: dict[str, str] = {}
    scanner.skip_space()
    while scanner.peek() != ")":
        if arguments:
            scanner.expect(",", "between arguments")
            scanner.skip_space()
            if scanner.peek() == ")":
                break
        arguments.update([_parse_argument(scanner, action, arguments)])
        scanner.skip_space()
        if scanner.peek() not in (",", ")"):
            raise scanner.fail(f"expected ',' or ')', found {scanner.describe()}")
    scanner.pos += 1
    if not scanner.at_end():
        raise scanner.fail(
            f"unexpected {scanner.peek()!r} after the statement (one statement per line; "
            "comments start with '#')"
        )
    return Statement(number, deny, action, arguments.get("repository"), arguments.get("path"))


def _parse_argument(scanner: _Scanner, action: Action, seen: Mapping[str, str]) -> tuple[str, str]:
    start = scanner.pos
    name = scanner.identifier()
    if name is None:
        raise scanner.fail(f"expected an argument name or ')', found {scanner.describe()}")
    if name not in ARGUMENTS:
        raise scanner.fail(
            f"unknown argument {name!r} (arguments are 'repository' and 'path')"
            f"{_suggest(name, ARGUMENTS)}",
            start,
        )
    if name in seen:
        raise scanner.fail(f"duplicate argument {name!r}", start)
    if name == "repository" and action in ACCOUNT_ACTIONS | ORGANIZATION_ACTIONS:
        raise scanner.fail(
            f"{action.value} is an organization action: it takes no 'repository' argument", start
        )
    if name == "path" and action not in PATH_ACTIONS:
        raise scanner.fail(
            f"{action.value} acts on no object: it takes no 'path' argument (only "
            f"{', '.join(sorted(a.value for a in PATH_ACTIONS))} do)",
            start,
        )
    scanner.expect("=", f"after {name}")
    scanner.skip_space()
    value_start = scanner.pos
    if scanner.peek() != '"':
        raise scanner.fail(f'expected a quoted string ("...") after {name}=')
    value = scanner.string()
    problem = _check_pattern(name, value)
    if problem:
        raise scanner.fail(problem, value_start)
    return name, value


def _check_pattern(name: str, value: str) -> str | None:
    if not value:
        return f'{name} must not be empty (use "*" for any)'
    if any(char < " " for char in value):
        return f"{name} must not contain control characters"
    if name == "repository" and value != "*" and "/" not in value:
        return (
            f'repository must be "organization/repository" (e.g. "*/{value}" or '
            f'"acme/{value}"), found {_quote(value)}'
        )
    if name == "path" and value.startswith("/"):
        return f"paths have no leading '/': write {_quote(value.lstrip('/'))}"
    return None


def _parse(text: str) -> tuple[list[Statement], list[PolicyError]]:
    statements: list[Statement] = []
    errors: list[PolicyError] = []
    # Lines end at "\n" (a "\r" before it is dropped) and nowhere else, as editors count them.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        try:
            statement = _parse_line(number, line)
        except _LineError as error:
            errors.append(PolicyError(number, error.column, error.message))
        else:
            if statement is not None:
                statements.append(statement)
    return statements, errors


def validate(text: str) -> list[PolicyError]:
    """Every error in ``text`` (at most one per line), in line order. A policy with no statement
    (empty, or only comments) is valid: it allows nothing."""
    return _parse(text)[1]


# --- compiled policies ------------------------------------------------------------------------

_Matcher = Callable[[str], bool]


def _always(_: str) -> bool:
    return True


def _matcher(pattern: str | None) -> _Matcher | None:
    """``None`` for no constraint; ``*`` matches any run of characters, ``/`` included."""
    if pattern is None:
        return None
    if set(pattern) == {"*"}:
        return _always
    if "*" not in pattern:
        return pattern.__eq__
    if pattern.endswith("*") and "*" not in pattern[:-1]:
        return _startswith(pattern[:-1])
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def _startswith(prefix: str) -> _Matcher:
    return lambda value: value.startswith(prefix)


@dataclass(frozen=True, slots=True)
class _Rule:
    statement: Statement
    repository: _Matcher | None
    path: _Matcher | None

    def matches(self, target: Target) -> bool:
        if self.repository is not None:
            if target.repository is None:
                return False
            if not self.repository(f"{target.organization}/{target.repository}"):
                return False
        return self.path is None or self.path(target.path or "")


def _index(statements: Sequence[Statement], deny: bool) -> dict[Action, tuple[_Rule, ...]]:
    index: dict[Action, list[_Rule]] = {}
    for statement in statements:
        if statement.deny == deny:
            rule = _Rule(statement, _matcher(statement.repository), _matcher(statement.path))
            index.setdefault(statement.action, []).append(rule)
    return {action: tuple(rules) for action, rules in index.items()}


@dataclass(frozen=True)
class CompiledPolicy:
    """A valid DSL policy, its statements indexed by action. Build with :func:`compile_policy`."""

    name: str
    text: str
    statements: tuple[Statement, ...]
    _allow: Mapping[Action, tuple[_Rule, ...]] = field(repr=False, compare=False)
    _deny: Mapping[Action, tuple[_Rule, ...]] = field(repr=False, compare=False)

    @property
    def actions(self) -> frozenset[Action]:
        """The actions some statement allows (whatever its arguments)."""
        return frozenset(self._allow)

    def match(self, action: Action, target: Target, subject: Subject | None = None) -> Match | None:
        deny = allow = None
        for rule in self._deny.get(action, ()):
            if rule.matches(target):
                deny = (
                    f"denied by policy {self.name!r} line {rule.statement.line}: {rule.statement}"
                )
                break
        for rule in self._allow.get(action, ()):
            if rule.matches(target):
                allow = _allowed_by(self.name, rule)
                break
        if deny is None and allow is None:
            return None
        return Match(deny=deny, allow=allow)


def compile_policy(text: str, *, name: str = "") -> CompiledPolicy:
    """Compiles ``text``; raises :class:`PolicyInvalid` (with every error) when it is not valid."""
    statements, errors = _parse(text)
    if errors:
        raise PolicyInvalid(errors)
    return CompiledPolicy(
        name=name,
        text=text,
        statements=tuple(statements),
        _allow=_index(statements, deny=False),
        _deny=_index(statements, deny=True),
    )


def _allowed_by(policy: str, rule: _Rule) -> str:
    return f"allowed by policy {policy!r} line {rule.statement.line}"


def _none_allows(action: Action, target: Target) -> Verdict:
    return Verdict(False, f"no policy allows {action.value} on {target}")


class PolicySet(tuple[Policy, ...]):
    """A principal's effective policies, for judging many requests (the authorizer caches one
    per principal): :func:`evaluate` decides with it exactly as with the plain sequence, faster.

    Per action, the ``Deny`` statements of every policy are gathered once: the path prefixes
    (``path="p/*"``) into one tuple that ``str.startswith`` tests at once, the exact paths into
    a set, the rest kept as they are. A request none of them matches (almost every request) is
    then decided by the first allow that matches, in policy order, without visiting each
    policy; a request a ``Deny`` may match is judged policy by policy, for the exact reason.
    A set holding a Rego policy is always judged policy by policy."""

    _judges: dict[Action, _Judge | None]

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._judges = {}

    def judge(self, action: Action) -> _Judge | None:
        """What decides ``action`` quickly; ``None``: judge it policy by policy."""
        try:
            return self._judges[action]
        except KeyError:
            compiled = [policy for policy in self if isinstance(policy, CompiledPolicy)]
            judge = _Judge(compiled, action) if len(compiled) == len(self) else None
            self._judges[action] = judge
            return judge


class _Judge:
    """One action's statements across a :class:`PolicySet` (see there)."""

    __slots__ = ("allows", "deny_paths", "deny_prefixes", "deny_rules")

    def __init__(self, policies: Sequence[CompiledPolicy], action: Action) -> None:
        prefixes: list[str] = []
        paths: set[str] = set()
        rules: list[_Rule] = []
        for policy in policies:
            for rule in policy._deny.get(action, ()):
                pattern = rule.statement.path
                if rule.repository is not None or pattern is None or pattern.strip("*") == "":
                    rules.append(rule)
                elif "*" not in pattern:
                    paths.add(pattern)
                elif pattern.endswith("*") and "*" not in pattern[:-1]:
                    prefixes.append(pattern[:-1])
                else:
                    rules.append(rule)
        self.deny_prefixes = tuple(prefixes)
        self.deny_paths = frozenset(paths)
        self.deny_rules = tuple(rules)
        self.allows = tuple(
            (policy.name, rule) for policy in policies for rule in policy._allow.get(action, ())
        )

    def may_deny(self, target: Target) -> bool:
        path = target.path or ""
        return (
            (bool(self.deny_prefixes) and path.startswith(self.deny_prefixes))
            or path in self.deny_paths
            or any(rule.matches(target) for rule in self.deny_rules)
        )

    def allow(self, action: Action, target: Target) -> Verdict:
        """The verdict when no ``Deny`` matches."""
        for policy, rule in self.allows:
            if rule.matches(target):
                return Verdict(True, _allowed_by(policy, rule))
        return _none_allows(action, target)


def evaluate(
    policies: Sequence[Policy],
    action: Action,
    target: Target,
    *,
    subject: Subject | None = None,
) -> Verdict:
    """Decides one request: refused when any policy's ``Deny`` matches it (whatever the order),
    else allowed when any policy allows it, else refused because none does. ``subject`` is passed
    to Rego policies as ``input.principal``. A :class:`PolicySet` decides the same, faster."""
    if isinstance(policies, PolicySet):
        judge = policies.judge(action)
        if judge is not None and not judge.may_deny(target):
            return judge.allow(action, target)
    allowed: str | None = None
    for policy in policies:
        found = policy.match(action, target, subject)
        if found is None:
            continue
        if found.deny is not None:
            return Verdict(False, found.deny)
        if allowed is None:
            allowed = found.allow
    if allowed is not None:
        return Verdict(True, allowed)
    return _none_allows(action, target)


# A path no object can have (object paths never hold NUL): only an allow without a path
# argument matches it.
_NO_PATH = "\x00"


def allows_every_path(policies: Sequence[Policy], action: Action, target: Target) -> bool:
    """Whether ``policies`` allow ``action`` on every path of ``target``'s repository: some
    allow without a ``path=`` matches, and no ``Deny`` of the action could refuse a path.
    Only the policy language can be read this way: with a Rego policy, the answer is False
    (ask path by path)."""
    for policy in policies:
        if not isinstance(policy, CompiledPolicy):
            return False
        if any(st.deny and st.action is action for st in policy.statements):
            return False
    no_path = Target(target.organization, target.repository, _NO_PATH)
    return evaluate(policies, action, no_path).allowed
