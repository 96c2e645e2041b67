"""Invitations: an organization invites a user (by username, or by email); the invitee accepts
(and becomes a member) or declines.

An invitation is addressed to a user id when it names an existing user (by username, or by an
email some user has), and always to an email (possibly empty). The invitee sees it when either
matches. It expires after :data:`INVITATION_TTL`; ``expired`` is derived, never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.identity.errors import (
    AlreadyMember,
    InvitationExists,
    InvitationGone,
    InvitationNotFound,
    InvitationNotPending,
    UserNotFound,
)
from lamina_server.identity.grants import admit
from lamina_server.identity.tables import invitations, memberships, organizations, users
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

INVITATION_TTL = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    id: str
    organization_id: str
    organization_name: str
    organization_display_name: str
    email: str
    user_id: str | None
    role: str
    invited_by: str
    inviter_name: str
    status: str  # pending | accepted | declined | revoked | expired
    created_at: datetime
    expires_at: datetime


_COLUMNS = (
    invitations,
    organizations.c.name.label("organization_name"),
    organizations.c.display_name.label("organization_display_name"),
)


def _status(row: sa.Row[Any], now: datetime) -> str:
    if row.status == "pending" and row.expires_at <= now:
        return "expired"
    return str(row.status)


def _invitation(row: sa.Row[Any], now: datetime) -> InvitationRecord:
    return InvitationRecord(
        id=row.id,
        organization_id=row.organization_id,
        organization_name=row.organization_name,
        organization_display_name=row.organization_display_name,
        email=row.email,
        user_id=row.user_id,
        role=row.role,
        invited_by=row.invited_by,
        inviter_name=row.invited_by_name,
        status=_status(row, now),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def _joined() -> sa.Select[Any]:
    return sa.select(*_COLUMNS).join(
        organizations, organizations.c.id == invitations.c.organization_id
    )


class Invitations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        org_id: str,
        org_name: str,
        inviter: Principal,
        *,
        email: str | None = None,
        username: str | None = None,
        role: str = "member",
    ) -> InvitationRecord:
        """404 for an unknown username; 409 when the user is a member already or the address
        has a pending invitation."""
        now = utcnow()
        async with self._db.begin() as conn:
            if username:
                user = (
                    await conn.execute(sa.select(users).where(users.c.username == username))
                ).first()
                if user is None:
                    raise UserNotFound(username)
            else:
                assert email
                user = (
                    await conn.execute(sa.select(users).where(users.c.email == email).limit(1))
                ).first()
            address = user.email if user is not None else str(email)
            user_id = user.id if user is not None else None
            if user_id is not None and await self._is_member(conn, org_id, user_id):
                raise AlreadyMember(username or address, org_name)
            addressed = [invitations.c.email == address] if address else []
            if user_id is not None:
                addressed.append(invitations.c.user_id == user_id)
            duplicate = await conn.scalar(
                sa.select(invitations.c.id).where(
                    invitations.c.organization_id == org_id,
                    invitations.c.status == "pending",
                    invitations.c.expires_at > now,
                    sa.or_(*addressed),
                )
            )
            if duplicate is not None:
                raise InvitationExists(username or address, org_name)
            invitation_id = str(uuid.uuid4())
            await conn.execute(
                invitations.insert().values(
                    id=invitation_id,
                    organization_id=org_id,
                    email=address,
                    user_id=user_id,
                    role=role,
                    invited_by=inviter.id,
                    invited_by_name=inviter.name,
                    status="pending",
                    created_at=now,
                    expires_at=now + INVITATION_TTL,
                )
            )
            row = (await conn.execute(_joined().where(invitations.c.id == invitation_id))).one()
        return _invitation(row, now)

    async def _is_member(self, conn: AsyncConnection, org_id: str, user_id: str) -> bool:
        found = await conn.scalar(
            sa.select(memberships.c.user_id).where(
                memberships.c.organization_id == org_id, memberships.c.user_id == user_id
            )
        )
        return found is not None

    async def list_for_organization(self, org_id: str) -> list[InvitationRecord]:
        """The organization's pending (unexpired) invitations, newest first."""
        now = utcnow()
        query = (
            _joined()
            .where(
                invitations.c.organization_id == org_id,
                invitations.c.status == "pending",
                invitations.c.expires_at > now,
            )
            .order_by(invitations.c.created_at.desc(), invitations.c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_invitation(row, now) for row in rows]

    async def revoke(self, org_id: str, invitation_id: str) -> None:
        """404 when the organization has no such invitation; 409 when it is not pending."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    _joined().where(
                        invitations.c.id == invitation_id,
                        invitations.c.organization_id == org_id,
                    )
                )
            ).first()
            if row is None:
                raise InvitationNotFound(invitation_id)
            status = _status(row, now)
            if status != "pending":
                raise InvitationNotPending(invitation_id, status)
            await conn.execute(
                invitations.update()
                .where(invitations.c.id == invitation_id)
                .values(status="revoked")
            )

    def _addressed_to(self, user: sa.Row[Any]) -> sa.ColumnElement[bool]:
        by_id: sa.ColumnElement[bool] = invitations.c.user_id == user.id
        if user.email:
            return sa.or_(by_id, invitations.c.email == user.email)
        return by_id

    async def _user(self, conn: AsyncConnection, principal: Principal) -> sa.Row[Any]:
        user = (await conn.execute(sa.select(users).where(users.c.id == principal.id))).first()
        if user is None:
            raise UserNotFound(principal.name)
        return user

    async def list_for_user(self, principal: Principal) -> list[InvitationRecord]:
        """The pending (unexpired) invitations addressed to the user, newest first."""
        now = utcnow()
        async with self._db.connect() as conn:
            user = await self._user(conn, principal)
            rows = (
                await conn.execute(
                    _joined()
                    .where(
                        self._addressed_to(user),
                        invitations.c.status == "pending",
                        invitations.c.expires_at > now,
                        organizations.c.deleted_at.is_(None),
                    )
                    .order_by(invitations.c.created_at.desc(), invitations.c.id)
                )
            ).all()
        return [_invitation(row, now) for row in rows]

    async def respond(self, principal: Principal, invitation_id: str, *, accept: bool) -> str:
        """Accepts (joining the organization) or declines; returns the new status.

        404 when no such invitation is addressed to the user; 410 when it was revoked or has
        expired; 409 when it was answered already.
        """
        now = utcnow()
        async with self._db.begin() as conn:
            user = await self._user(conn, principal)
            row = (
                await conn.execute(
                    _joined().where(invitations.c.id == invitation_id, self._addressed_to(user))
                )
            ).first()
            if row is None:
                raise InvitationNotFound(invitation_id)
            status = _status(row, now)
            if status in ("revoked", "expired"):
                raise InvitationGone(invitation_id, status)
            if status != "pending":
                raise InvitationNotPending(invitation_id, status)
            new_status = "accepted" if accept else "declined"
            if accept and not await self._is_member(conn, row.organization_id, user.id):
                await admit(conn, row.organization_id, user.id, role=row.role, joined_at=now)
            await conn.execute(
                invitations.update()
                .where(invitations.c.id == invitation_id)
                .values(status=new_status, user_id=user.id)
            )
        return new_status
