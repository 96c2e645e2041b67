"""Invitations: an organization's (create, list, revoke) and the invitee's (list, accept,
decline)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import (
    AccessDep,
    LaminaRoute,
    account_action,
    organization_action,
)
from lamina_server.api.errors import bad_request
from lamina_server.api.params import ORG, ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.identity import InvitationRecord

router = APIRouter(route_class=LaminaRoute)

InvitationId = Annotated[str, Path(description="Invitation ID")]


class CreateInvitationRequest(BaseModel):
    """``email`` or ``username`` (one is required); ``role`` is a Lamina extension.

    ``group_ids`` and ``policy_ids`` are accepted and ignored until groups and policies exist.
    """

    model_config = ConfigDict(extra="ignore")
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    username: str | None = Field(None, min_length=1, max_length=64)
    role: Literal["admin", "member"] = "member"


class Invitation(BaseModel):
    id: str
    organization_id: str
    email: str
    invited_by: str
    status: str = Field(description="pending, accepted, declined, revoked or expired")
    created_at: datetime
    expires_at: datetime
    role: str = Field(description="Lamina: the membership role granted on accept")


class InvitationWithDetails(Invitation):
    organization_name: str
    organization_display_name: str
    inviter_name: str


class InvitationList(BaseModel):
    results: list[Invitation]


class InvitationDetailsList(BaseModel):
    results: list[InvitationWithDetails]


class InvitationStatus(BaseModel):
    status: str


def invitation_json(record: InvitationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "organization_id": record.organization_id,
        "email": record.email,
        "invited_by": record.invited_by,
        "status": record.status,
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
        "role": record.role,
    }


def invitation_details_json(record: InvitationRecord) -> dict[str, Any]:
    return {
        **invitation_json(record),
        "organization_name": record.organization_name,
        "organization_display_name": record.organization_display_name,
        "inviter_name": record.inviter_name,
    }


# --- the organization's -----------------------------------------------------------------------


@router.post(
    f"{ORG}/invitations",
    tags=["Organizations"],
    status_code=201,
    summary="Invite a user to the organization by email or username",
    responses={201: {"model": Invitation}, **error_responses(400, 404, 409)},
    dependencies=[organization_action(Action.MANAGE_MEMBERS)],
)
async def create_invitation(
    body: CreateInvitationRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    if not (body.email or body.username):
        raise bad_request("email: is required (or username)")
    record = await services.identity.invitations.create(
        access.org.id,
        access.org.name,
        access.caller,
        email=body.email,
        username=body.username,
        role=body.role,
    )
    return JSONResponse(invitation_json(record), status_code=201)


@router.get(
    f"{ORG}/invitations",
    tags=["Organizations"],
    summary="List the organization's pending invitations",
    responses={200: {"model": InvitationList}, **error_responses(404)},
    dependencies=[organization_action(Action.MANAGE_MEMBERS)],
)
async def list_invitations(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.identity.invitations.list_for_organization(access.org.id)
    return JSONResponse({"results": [invitation_json(record) for record in records]})


@router.delete(
    f"{ORG}/invitations/{{invitation_id}}",
    tags=["Organizations"],
    status_code=204,
    summary="Revoke a pending invitation",
    responses=error_responses(404, 409),
    dependencies=[organization_action(Action.MANAGE_MEMBERS)],
)
async def revoke_invitation(
    invitation_id: InvitationId, services: ServicesDep, access: AccessDep
) -> Response:
    await services.identity.invitations.revoke(access.org.id, invitation_id)
    return Response(status_code=204)


# --- the invitee's ----------------------------------------------------------------------------


@router.get(
    "/invitations",
    tags=["Invitations"],
    summary="List the calling user's pending invitations",
    responses={200: {"model": InvitationDetailsList}, **error_responses()},
    dependencies=[account_action(Action.RESPOND_TO_INVITATIONS)],
)
async def list_my_invitations(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.identity.invitations.list_for_user(access.caller)
    return JSONResponse({"results": [invitation_details_json(record) for record in records]})


@router.post(
    "/invitations/{invitation_id}/accept",
    tags=["Invitations"],
    summary="Accept an invitation (the caller joins the organization)",
    responses={200: {"model": InvitationStatus}, **error_responses(404, 409, 410)},
    dependencies=[account_action(Action.RESPOND_TO_INVITATIONS)],
)
async def accept_invitation(
    invitation_id: InvitationId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    status = await services.identity.invitations.respond(access.caller, invitation_id, accept=True)
    return JSONResponse({"status": status})


@router.post(
    "/invitations/{invitation_id}/decline",
    tags=["Invitations"],
    summary="Decline an invitation",
    responses={200: {"model": InvitationStatus}, **error_responses(404, 409, 410)},
    dependencies=[account_action(Action.RESPOND_TO_INVITATIONS)],
)
async def decline_invitation(
    invitation_id: InvitationId, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    status = await services.identity.invitations.respond(access.caller, invitation_id, accept=False)
    return JSONResponse({"status": status})
