"""The records of groups, policies and attachments, as the access store answers them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lamina_server.identity.grants import BUILTIN_IDS

Subject = tuple[str, str]  # (type, id): user | group | role | agent
BUILTIN_BY_ID = {policy_id: name for name, policy_id in BUILTIN_IDS.items()}


def describe(subject: Subject) -> str:
    return f"{subject[0]} {subject[1]!r}"


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    organization_id: str
    name: str
    description: str
    created_by_type: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRecord:
    subject_type: str
    subject_id: str
    display_name: str
    username: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    id: str
    organization_id: str
    name: str
    description: str
    policy_text: str
    is_builtin: bool
    created_by_type: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    attachment_count: int = 0
    language: str = "dsl"  # "dsl" (the policy language) | "rego"


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    policy_id: str
    policy_name: str
    is_builtin: bool
    principal_type: str
    principal_id: str
    principal_name: str
    attached_by_type: str
    attached_by: str
    attached_at: datetime


@dataclass(frozen=True, slots=True)
class EffectiveGroup:
    group_id: str
    group_name: str
    description: str
    source: str  # "direct" | "group"
    source_name: str  # the parent group's name when source is "group"


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    policy: PolicyRecord
    source: str  # "direct" | "group" | "inline"
    source_name: str  # the group's name when source is "group", the agent's when "inline"


def group_record(row: Any) -> GroupRecord:
    return GroupRecord(
        row.id,
        row.organization_id,
        row.name,
        row.description,
        row.created_by_type,
        row.created_by,
        row.created_at,
    )


def policy_record(row: Any, count: int = 0) -> PolicyRecord:
    return PolicyRecord(
        row.id,
        row.organization_id,
        row.name,
        row.description,
        row.policy_text,
        False,
        row.created_by_type,
        row.created_by,
        row.created_at,
        row.updated_at,
        count,
        language=row.language,
    )
