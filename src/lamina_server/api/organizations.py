"""Organizations and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, account_action, organization_action
from lamina_server.api.errors import bad_request
from lamina_server.api.params import ORG, ServicesDep
from lamina_server.api.schemas import SLUG_PATTERN, error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.identity import MembershipRecord, OrganizationRecord

router = APIRouter(tags=["Organizations"], route_class=LaminaRoute)


class CreateOrgRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=SLUG_PATTERN)
    display_name: str = Field(max_length=256)


class AddMemberRequest(BaseModel):
    """``username`` (tilde SDK) or ``user_id`` (cerebral SDK); other fields are ignored.

    One of the two is required (400 otherwise).
    """

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["username"], "properties": {"username": {"type": "string"}}},
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
            ]
        },
    )
    username: str | None = Field(None, min_length=1, max_length=64)
    user_id: str | None = Field(None, min_length=1, max_length=36)
    role: Literal["admin", "member"] = "member"


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    display_name: str
    created_at: datetime


class OrganizationList(BaseModel):
    results: list[Organization]


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization_id: str
    user_id: str
    username: str
    full_name: str
    email: str
    joined_at: datetime
    role: str = Field(description="admin or member (an extension the cerebral SDK reads)")


class NameCheck(BaseModel):
    available: bool
    reason: Literal["", "invalid", "reserved", "taken"]


class MembershipList(BaseModel):
    results: list[Membership]


def organization_json(org: OrganizationRecord) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "display_name": org.display_name,
        "created_at": rfc3339(org.created_at),
    }


def membership_json(member: MembershipRecord) -> dict[str, Any]:
    return {
        "organization_id": member.organization_id,
        "user_id": member.user_id,
        "username": member.username,
        "full_name": member.full_name,
        "email": member.email,
        "joined_at": rfc3339(member.joined_at),
        "role": member.role,
    }


@router.post(
    "/organizations",
    status_code=201,
    summary="Create an organization (the caller becomes a member)",
    responses={201: {"model": Organization}, **error_responses(400, 409)},
    dependencies=[account_action(Action.CREATE_ORGANIZATION)],
)
async def create_organization(
    body: CreateOrgRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    org = await services.identity.create_organization(body.name, body.display_name, access.caller)
    return JSONResponse(organization_json(org), status_code=201)


@router.get(
    "/organizations",
    summary="List the caller's organizations",
    responses={200: {"model": OrganizationList}, **error_responses()},
    dependencies=[account_action(Action.LIST_ORGANIZATIONS)],
)
async def list_organizations(services: ServicesDep, access: AccessDep) -> JSONResponse:
    orgs = await services.identity.list_organizations(access.caller)
    return JSONResponse({"results": [organization_json(org) for org in orgs]})


@router.get(
    "/organizations/check-name",
    summary="Whether a name is valid and free for a new organization",
    responses={200: {"model": NameCheck}, **error_responses(400)},
    dependencies=[account_action(Action.CREATE_ORGANIZATION)],
)
async def check_organization_name(
    name: Annotated[str, Query(description="The name to check", max_length=256)],
    services: ServicesDep,
) -> JSONResponse:
    reason = await services.identity.check_name(name)
    return JSONResponse({"available": not reason, "reason": reason})


@router.get(
    ORG,
    summary="Get an organization",
    responses={200: {"model": Organization}, **error_responses(404)},
    dependencies=[organization_action(Action.GET_ORGANIZATION)],
)
async def get_organization(access: AccessDep) -> JSONResponse:
    return JSONResponse(organization_json(access.org))


@router.delete(
    ORG,
    status_code=204,
    summary="Delete an organization (soft: its data stays, its name is freed)",
    responses=error_responses(404),
    dependencies=[organization_action(Action.DELETE_ORGANIZATION)],
)
async def delete_organization(services: ServicesDep, access: AccessDep) -> Response:
    await services.identity.delete_organization(access.org)
    return Response(status_code=204)


@router.get(
    f"{ORG}/members",
    summary="List an organization's members",
    responses={200: {"model": MembershipList}, **error_responses(404)},
    dependencies=[organization_action(Action.LIST_MEMBERS)],
)
async def list_members(services: ServicesDep, access: AccessDep) -> JSONResponse:
    members = await services.identity.list_members(access.org)
    return JSONResponse({"results": [membership_json(member) for member in members]})


@router.post(
    f"{ORG}/members",
    status_code=201,
    summary="Add an existing user to the organization (by username or user_id)",
    responses={201: {"model": Membership}, **error_responses(400, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_MEMBERS)],
)
async def add_member(
    body: AddMemberRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    if not (body.username or body.user_id):
        raise bad_request("username: is required (or user_id)")
    member = await services.identity.add_member(
        access.org, username=body.username, user_id=body.user_id, role=body.role
    )
    return JSONResponse(membership_json(member), status_code=201)


@router.delete(
    f"{ORG}/members/{{user_id}}",
    status_code=204,
    summary="Remove a member from the organization",
    responses=error_responses(404, 409),
    dependencies=[organization_action(Action.MANAGE_MEMBERS)],
)
async def remove_member(
    user_id: Annotated[str, Path(description="The member's user ID")],
    services: ServicesDep,
    access: AccessDep,
) -> Response:
    await services.identity.remove_member(access.org, user_id)
    return Response(status_code=204)
