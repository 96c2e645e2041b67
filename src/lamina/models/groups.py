"""Groups: records, members, and the groups a principal belongs to."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen

from lamina.models.policies import Attachment


@frozen
class GroupData:
    """A group as the API returns it (``GET /organizations/{org}/groups/{id}``, ``group``)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None


@frozen
class GroupMember:
    """A member of a group: a user, group, role or agent (``subject_type``)."""

    subject_type: str
    subject_id: str
    display_name: str = ""
    username: str = ""
    added_at: datetime | None = None


@frozen
class GroupDetail:
    """``GET /organizations/{org}/groups/{id}``: the group, its members and the policies
    attached to it."""

    group: GroupData
    members: list[GroupMember] = field(factory=list)
    attachments: list[Attachment] = field(factory=list)


@frozen
class EffectiveGroup:
    """A group a principal belongs to: ``source`` is ``"direct"``, or ``"group"`` when through
    the group named ``source_name``."""

    group_id: str
    group_name: str = ""
    description: str = ""
    source: str = ""
    source_name: str = ""
