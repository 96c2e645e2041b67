"""Policies: records, attachments, effective policies, validation, and the answer of
:func:`lamina.can_i` / :func:`lamina.explain`."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen


@frozen
class PolicyData:
    """A policy as the API returns it. ``policy_text`` is empty in a listing (which has
    ``attachment_count`` instead); ``get()`` returns both the text and the attachments.
    ``language`` is ``"dsl"`` (the policy language) or ``"rego"`` (the reference server's
    extension; a server that does not send it has only the policy language)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    policy_text: str = ""
    is_builtin: bool = False
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attachment_count: int | None = None
    language: str = "dsl"


@frozen
class Attachment:
    """A policy attached to a principal (``principal_type``: user, group, role or agent)."""

    policy_id: str
    principal_type: str
    principal_id: str
    policy_name: str = ""
    is_builtin: bool = False
    principal_name: str = ""
    attached_by_type: str = ""
    attached_by: str = ""
    attached_at: datetime | None = None


@frozen
class PolicyDetail:
    """``GET /organizations/{org}/policies/{id}``: the policy and where it is attached."""

    policy: PolicyData
    attachments: list[Attachment] = field(factory=list)


@frozen
class EffectivePolicy:
    """A policy that applies to a principal: ``source`` is ``"direct"``, ``"group"`` (through
    the group ``source_name``) or ``"inline"`` (an agent's inline policy)."""

    policy_id: str
    policy_name: str = ""
    is_builtin: bool = False
    source: str = ""
    source_name: str = ""


@frozen
class ValidationIssue:
    """One problem in a policy text; ``line`` and ``column`` count from 1."""

    message: str
    line: int = 0
    column: int = 0


@frozen
class ValidationResult:
    """The answer of ``policies.validate(text)``."""

    valid: bool
    errors: list[ValidationIssue] = field(factory=list)


@frozen
class GeneratedPolicy:
    """``POST /organizations/{org}/policies:generate``: a drafted policy text."""

    policy_text: str


@frozen
class Explanation:
    """Whether an action on a resource is allowed, and what decides it.

    ``policy_id``, ``policy_name``, ``line`` (from 1) and ``rule`` (the line's text) name the
    deciding line: the first matching ``Deny`` line, else the first matching allowing line.
    They are ``None`` when nothing matched (``allowed`` is then ``False``: what no policy
    allows is denied). ``reason`` says it in words.
    """

    allowed: bool
    action: str
    resource: str
    reason: str
    policy_id: str | None = None
    policy_name: str | None = None
    line: int | None = None
    rule: str | None = None

    def __bool__(self) -> bool:
        return self.allowed
