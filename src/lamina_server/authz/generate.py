"""``:generate``: a policy from a sentence. Every generator returns text :func:`validate` accepts.

:class:`RuleGenerator` is built in and deterministic: keyword rules for the common requests
("read-only access to all repositories", "write to data/ in repo X", "run sandboxes").
:class:`OpenAIGenerator` asks an OpenAI-compatible chat-completions endpoint instead, checks the
model's answer with :func:`validate` (asking once more, with the errors, when it is invalid) and
raises :class:`GeneratorBadOutput` (or answers with its fallback) rather than return an invalid
policy. :func:`policy_generator` picks one from :class:`GeneratorSettings`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from lamina_server.authz.actions import Action
from lamina_server.authz.policy import (
    ACCOUNT_ACTIONS,
    ORGANIZATION_ACTIONS,
    PATH_ACTIONS,
    validate,
)

__all__ = [
    "MAX_PROMPT_LENGTH",
    "GenerationError",
    "GeneratorBadOutput",
    "GeneratorRateLimited",
    "GeneratorSettings",
    "GeneratorUnavailable",
    "OpenAIGenerator",
    "PolicyGenerator",
    "RuleGenerator",
    "policy_generator",
]

MAX_PROMPT_LENGTH = 4000


class GenerationError(Exception):
    """No policy could be generated; the subclasses say why (the API maps them to a status)."""


class GeneratorUnavailable(GenerationError):
    """The configured endpoint could not be reached or answered with an error (503)."""


class GeneratorRateLimited(GenerationError):
    """The configured endpoint refused for now (429)."""


class GeneratorBadOutput(GenerationError):
    """The endpoint answered with something that is not a valid policy (502)."""


class PolicyGenerator(Protocol):
    async def generate(self, prompt: str) -> str:
        """Policy text for ``prompt``; always text that :func:`validate` accepts."""
        ...


# --- the built-in, deterministic generator ----------------------------------------------------

_READ = (
    Action.LIST_REPOSITORIES,
    Action.GET_REPOSITORY,
    Action.LIST_OBJECTS,
    Action.GET_OBJECT,
    Action.LIST_COMMITS,
    Action.GET_COMMIT,
)
_WRITE = (
    Action.CREATE_SESSION,
    Action.GET_SESSION,
    Action.COMMIT_SESSION,
    Action.ROLLBACK_SESSION,
    Action.PUT_OBJECT,
)
_DELETE = (
    Action.CREATE_SESSION,
    Action.GET_SESSION,
    Action.COMMIT_SESSION,
    Action.ROLLBACK_SESSION,
    Action.DELETE_OBJECT,
)
_SANDBOXES = (
    Action.LIST_SANDBOXES,
    Action.GET_SANDBOX,
    Action.CREATE_SANDBOX,
    Action.EXEC_SANDBOX,
    Action.CANCEL_SANDBOX,
    Action.FINISH_SANDBOX,
)


@dataclass(frozen=True)
class _Rule:
    words: re.Pattern[str]
    what: str
    actions: tuple[Action, ...]


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# Checked in order; "admin" stands alone (it covers everything).
_RULES = (
    _Rule(_words("read", "reads", "reading", "view", "download", "see"), "read", _READ),
    _Rule(_words("read-only", "readonly", "read only"), "read", _READ),
    _Rule(
        _words("write", "writes", "writing", "upload", "uploads", "modify", "edit"), "write", _WRITE
    ),
    _Rule(_words("read-write", "readwrite"), "read and write", _READ + _WRITE),
    _Rule(_words("delete", "deletes", "deleting", "remove"), "delete objects", _DELETE),
    _Rule(
        _words("sandbox", "sandboxes", "run", "runs", "execute", "exec", "compute"),
        "run sandboxes",
        _SANDBOXES,
    ),
    _Rule(
        _words("trigger", "triggers"), "manage sandbox triggers", (Action.MANAGE_SANDBOX_TRIGGERS,)
    ),
    _Rule(
        _words("approve", "approval", "approvals"), "approve sessions", (Action.APPROVE_SESSION,)
    ),
    _Rule(_words("revert", "reverts"), "revert commits", (Action.REVERT_COMMIT,)),
    _Rule(_words("audit"), "read the audit log", (Action.READ_AUDIT_LOG,)),
    _Rule(_words("evidence"), "export evidence", (Action.EXPORT_EVIDENCE,)),
    _Rule(_words("members", "membership"), "list members", (Action.LIST_MEMBERS,)),
    _Rule(_words("secret", "secrets"), "read secrets", (Action.GET_SECRET,)),
    _Rule(_words("import", "imports"), "import data", (Action.IMPORT_DATA,)),
)
_ADMIN = _words("admin", "administrator", "administer", "everything", "full access", "all actions")
# A negation covers the rest of its clause: "read and write, but no deletes".
_NEGATED = re.compile(r"\b(?:no|not|never|without|except|cannot|can't)\b[^,.;:!?]*")
_SESSIONS = frozenset(
    {Action.CREATE_SESSION, Action.GET_SESSION, Action.COMMIT_SESSION, Action.ROLLBACK_SESSION}
)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NOT_A_NAME = frozenset(
    [
        "a",
        "an",
        "the",
        "all",
        "any",
        "every",
        "each",
        "in",
        "to",
        "of",
        "for",
        "from",
        "and",
        "or",
        "with",
        "on",
        "at",
        "only",
    ]
)
_REPOSITORY = re.compile(
    r"\b(?:repo|repos|repository|repositories)\s+[\"'`]?(" + _NAME + r"(?:/" + _NAME + r")?)",
    re.IGNORECASE,
)
_REPOSITORY_BEFORE = re.compile(
    r"\b(?:in|to|of|from|on)\s+(?:the\s+)?[\"'`]?(" + _NAME + r")[\"'`]?\s+(?:repo|repository)\b",
    re.IGNORECASE,
)
_ORGANIZATION_REPOSITORY = re.compile(
    r"\b(?:in|to|of|on|for|from|at)\s+[\"'`]?(" + _NAME + "/" + _NAME + r")(?![\w/*])",
    re.IGNORECASE,
)
_PATH_AFTER = re.compile(
    r"\b(?:folder|directory|dir|prefix|path)\s+[\"'`]?([A-Za-z0-9._*/-]+)", re.IGNORECASE
)
_PREFIX = re.compile(r"(?<![\w/])/?([A-Za-z0-9._*-][A-Za-z0-9._*/-]*/\*?)(?![\w/])")


def _repository(prompt: str) -> str | None:
    for pattern in (_REPOSITORY, _REPOSITORY_BEFORE, _ORGANIZATION_REPOSITORY):
        for found in pattern.finditer(prompt):
            name = found.group(1)
            if name.lower() not in _NOT_A_NAME:
                return name if "/" in name else f"*/{name}"
    return None


def _path(prompt: str) -> str | None:
    found = _PATH_AFTER.search(prompt) or _PREFIX.search(prompt)
    if found is None:
        return None
    path = found.group(1).lstrip("/")
    if not path or path.lower() in _NOT_A_NAME:
        return None
    if not path.endswith("*"):
        path = path if path.endswith("/") else f"{path}/"
        path += "*"
    return path


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _statement(action: Action, repository: str | None, path: str | None) -> str:
    arguments = []
    if repository is not None and action not in ACCOUNT_ACTIONS | ORGANIZATION_ACTIONS:
        arguments.append(f"repository={_quote(repository)}")
    if path is not None and action in PATH_ACTIONS:
        arguments.append(f"path={_quote(path)}")
    return f"{action.value}({', '.join(arguments)})"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


class RuleGenerator:
    """Keyword rules: what to allow ("read", "write", "delete", "run sandboxes", "approve"…,
    or "admin" for everything), where (``repo X``, ``X repository``, ``org/repo``) and under which
    prefix (``data/``, ``folder data``). The policy starts with a comment that says how the
    request was read; a request no rule understands gets a policy that allows nothing."""

    async def generate(self, prompt: str) -> str:
        return self.policy_for(prompt)

    def policy_for(self, prompt: str) -> str:
        lowered = prompt.lower()
        refused = " ".join(found.group() for found in _NEGATED.finditer(lowered))
        asked = _NEGATED.sub(" ", lowered)
        header = f"# Generated from: {_one_line(prompt)}\n"
        repository = _repository(prompt)
        path = _path(prompt)
        # What a negation names is refused with Deny lines, except the session actions that
        # other writes share.
        denied = [
            action
            for rule in _RULES
            if rule.words.search(refused)
            for action in rule.actions
            if action not in _SESSIONS
        ]
        denials = [f"Deny {_statement(action, None, None)}" for action in dict.fromkeys(denied)]
        if _ADMIN.search(asked):
            lines = ["# Every action" + (", except what is denied below." if denials else ".")]
            lines.extend(f"{action.value}()" for action in Action)
            return _checked(header + "\n".join(lines + denials) + "\n")
        what: list[str] = []
        actions: list[Action] = []
        for rule in _RULES:
            if rule.words.search(asked):
                what.append(rule.what)
                actions.extend(a for a in rule.actions if a not in actions and a not in denied)
        if not actions:
            return _checked(
                header + "# No rule understood this request: this policy allows nothing.\n"
                "# Ask for e.g. 'read-only access to all repositories', 'write to data/ in repo "
                "X' or 'run sandboxes'.\n"
            )
        scope = f" in repository {repository}" if repository else " in every repository"
        if path:
            scope += f", objects under {path}"
        lines = [f"# Allows: {', '.join(dict.fromkeys(what))}{scope}."]
        lines.extend(_statement(action, repository, path) for action in actions)
        return _checked(header + "\n".join(lines) + "\n")


def _checked(text: str) -> str:
    errors = validate(text)
    if errors:
        raise GeneratorBadOutput(f"generated an invalid policy: {errors[0]}")
    return text


# --- an OpenAI-compatible endpoint ------------------------------------------------------------

_SYSTEM = """You write access policies for Lamina, a versioned object store.
Answer with the policy text only: no prose, no code fences.
One statement per line: an action name followed by parentheses, e.g. GetObject().
Optional arguments, as double-quoted strings: repository="org/repo" and path="prefix/*"
(* matches any characters, including /). Only ListObjects, GetObject, PutObject and DeleteObject
take path. Organization actions take no repository.
A line "Deny Action(...)" refuses what it matches, whatever else allows it.
Lines starting with # are comments.
The actions: {actions}.
Allow exactly what the request asks for and nothing more."""


@dataclass(frozen=True)
class GeneratorSettings:
    """An OpenAI-compatible chat-completions endpoint (``{base_url}/chat/completions``)."""

    base_url: str
    api_key: str
    model: str
    timeout: float = 30.0


class OpenAIGenerator:
    """Asks ``model`` at ``base_url``; an invalid answer is sent back once with its errors, and if
    the second answer is invalid too, ``fallback`` answers (or :class:`GeneratorBadOutput`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        timeout: float = 30.0,
        fallback: PolicyGenerator | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._model = model
        self._timeout = timeout
        self._fallback = fallback
        self._transport = transport

    async def generate(self, prompt: str) -> str:
        messages: list[dict[str, str]] = [
            {
                "role": "system",
                "content": _SYSTEM.format(actions=", ".join(a.value for a in Action)),
            },
            {"role": "user", "content": prompt},
        ]
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            for _ in range(2):
                text = await self._complete(client, messages)
                errors = validate(text)
                if not errors:
                    return text
                messages.append({"role": "assistant", "content": text})
                messages.append(
                    {
                        "role": "user",
                        "content": "That policy is invalid:\n"
                        + "\n".join(str(error) for error in errors)
                        + "\nAnswer with the corrected policy text only.",
                    }
                )
        if self._fallback is not None:
            return await self._fallback.generate(prompt)
        raise GeneratorBadOutput(f"the model answered with an invalid policy: {errors[0]}")

    async def _complete(self, client: httpx.AsyncClient, messages: Sequence[dict[str, str]]) -> str:
        try:
            response = await client.post(
                self._url,
                headers={"Authorization": f"Bearer {self._api_key}"},
                json={"model": self._model, "messages": list(messages), "temperature": 0},
            )
        except httpx.HTTPError as error:
            raise GeneratorUnavailable(f"the policy generator is unreachable: {error}") from error
        if response.status_code == 429:
            raise GeneratorRateLimited("the policy generator is rate limited; try again later")
        if response.status_code >= 400:
            raise GeneratorUnavailable(
                f"the policy generator answered {response.status_code}: {response.text[:200]}"
            )
        try:
            body: Any = response.json()
            content = body["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise GeneratorBadOutput("the policy generator's answer has no message") from error
        if not isinstance(content, str):
            raise GeneratorBadOutput("the policy generator's answer has no text")
        return _strip_fences(content)


def _strip_fences(text: str) -> str:
    """Models wrap code in ``` fences despite being asked not to."""
    lines = text.strip().split("\n")
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        lines = lines[1:-1]
    return "\n".join(lines).strip() + "\n"


def policy_generator(settings: GeneratorSettings | None) -> PolicyGenerator:
    """The endpoint ``settings`` names (falling back to the rules), or the rules alone."""
    rules = RuleGenerator()
    if settings is None:
        return rules
    return OpenAIGenerator(
        settings.base_url,
        settings.api_key,
        settings.model,
        timeout=settings.timeout,
        fallback=rules,
    )
