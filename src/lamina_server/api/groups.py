"""Groups of an organization, their members (users, groups, roles, agents) and a principal's
effective groups.

Reading groups is :attr:`Action.LIST_MEMBERS` (who is in the organization, and how it is
organized); changing them is :attr:`Action.MANAGE_GROUPS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action
from lamina_server.api.pagination import envelope
from lamina_server.api.params import ORG, Pages, ServicesDep
from lamina_server.api.policies import (
    Attachment,
    PrincipalType,
    QueriedPrincipal,
    attachment_json,
)
from lamina_server.api.schemas import PaginationBody, error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.authz.records import GroupRecord, MemberRecord

router = APIRouter(tags=["Groups"], route_class=LaminaRoute)

GROUP = f"{ORG}/groups/{{group_id}}"
GroupId = Annotated[str, Path(description="Group ID")]


class CreateGroupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=1024)


class UpdateGroupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=1024)


class AddGroupMemberRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    subject_type: PrincipalType
    subject_id: str = Field(min_length=1, max_length=36)


class Group(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    created_by_type: str
    created_by: str
    created_at: datetime


class GroupMember(BaseModel):
    subject_type: PrincipalType
    subject_id: str
    display_name: str
    username: str
    added_at: datetime


class GroupDetail(BaseModel):
    group: Group
    members: list[GroupMember]
    attachments: list[Attachment]


class GroupList(BaseModel):
    results: list[Group]
    pagination: PaginationBody


class EffectiveGroup(BaseModel):
    group_id: str
    group_name: str
    description: str
    source: Literal["direct", "group"]
    source_name: str


class EffectiveGroupList(BaseModel):
    results: list[EffectiveGroup]


def group_json(group: GroupRecord) -> dict[str, Any]:
    return {
        "id": group.id,
        "organization_id": group.organization_id,
        "name": group.name,
        "description": group.description,
        "created_by_type": group.created_by_type,
        "created_by": group.created_by,
        "created_at": rfc3339(group.created_at),
    }


def member_json(member: MemberRecord) -> dict[str, Any]:
    return {
        "subject_type": member.subject_type,
        "subject_id": member.subject_id,
        "display_name": member.display_name,
        "username": member.username,
        "added_at": rfc3339(member.added_at),
    }


@router.get(
    f"{ORG}/groups",
    summary="List the organization's groups (by name)",
    response_model=GroupList,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.LIST_MEMBERS)],
)
async def list_groups(services: ServicesDep, access: AccessDep, pages: Pages) -> JSONResponse:
    found, has_more = await services.access.list_groups(access.org, pages.after, pages.amount)
    results = [group_json(group) for group in found]
    next_offset = found[-1].name if found else None
    return JSONResponse(
        envelope(results, has_more=has_more, next_offset=next_offset, amount=pages.amount)
    )


@router.post(
    f"{ORG}/groups",
    status_code=201,
    summary="Create a group",
    responses={201: {"model": Group}, **error_responses(400, 403, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_GROUPS)],
)
async def create_group(
    body: CreateGroupRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    group = await services.access.create_group(
        access.org, body.name, body.description, access.caller
    )
    return JSONResponse(group_json(group), status_code=201)


@router.get(
    GROUP,
    summary="Get a group with its members and policy attachments",
    response_model=GroupDetail,
    responses=error_responses(403, 404),
    dependencies=[organization_action(Action.LIST_MEMBERS)],
)
async def get_group(group_id: GroupId, services: ServicesDep, access: AccessDep) -> JSONResponse:
    group = await services.access.get_group(access.org, group_id)
    members = await services.access.members(access.org, group_id)
    attachments = await services.access.attachments(access.org, principal=("group", group_id))
    return JSONResponse(
        {
            "group": group_json(group),
            "members": [member_json(member) for member in members],
            "attachments": [attachment_json(item) for item in attachments],
        }
    )


@router.put(
    GROUP,
    summary="Update a group's name or description",
    response_model=Group,
    responses=error_responses(400, 403, 404, 409),
    dependencies=[organization_action(Action.MANAGE_GROUPS)],
)
async def update_group(
    group_id: GroupId, body: UpdateGroupRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    group = await services.access.update_group(access.org, group_id, body.name, body.description)
    return JSONResponse(group_json(group))


@router.delete(
    GROUP,
    status_code=204,
    summary="Delete a group (its memberships and attachments go with it)",
    responses=error_responses(403, 404),
    dependencies=[organization_action(Action.MANAGE_GROUPS)],
)
async def delete_group(group_id: GroupId, services: ServicesDep, access: AccessDep) -> Response:
    await services.access.delete_group(access.org, group_id)
    return Response(status_code=204)


@router.post(
    f"{GROUP}/members",
    status_code=201,
    summary="Add a user, group, role or agent to a group (a cycle of groups is refused, 409)",
    responses={201: {"model": GroupMember}, **error_responses(400, 403, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_GROUPS)],
)
async def add_group_member(
    group_id: GroupId, body: AddGroupMemberRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    subject = (body.subject_type, body.subject_id)
    await services.access.add_member(access.org, group_id, subject)
    members = await services.access.members(access.org, group_id)
    added = next(m for m in members if (m.subject_type, m.subject_id) == subject)
    return JSONResponse(member_json(added), status_code=201)


@router.delete(
    f"{GROUP}/members",
    status_code=204,
    summary="Remove a member from a group",
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.MANAGE_GROUPS)],
)
async def remove_group_member(
    group_id: GroupId,
    subject_type: Annotated[PrincipalType, Query(description="user, group, role or agent")],
    subject_id: Annotated[str, Query(description="The member's ID")],
    services: ServicesDep,
    access: AccessDep,
) -> Response:
    await services.access.remove_member(access.org, group_id, (subject_type, subject_id))
    return Response(status_code=204)


@router.get(
    f"{ORG}/effective-groups",
    summary="A principal's groups: direct, and inherited through nested groups",
    response_model=EffectiveGroupList,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.LIST_MEMBERS)],
)
async def effective_groups(
    subject: QueriedPrincipal, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    found = await services.access.effective_groups(access.org, subject)
    return JSONResponse(
        {
            "results": [
                {
                    "group_id": group.group_id,
                    "group_name": group.group_name,
                    "description": group.description,
                    "source": group.source,
                    "source_name": group.source_name,
                }
                for group in found
            ]
        }
    )
