"""Tables of access control — groups, policies, attachments — and the epoch that versions them.

They live with identity because identity writes them too: creating an organization attaches the
built-in ``OrgAdmin`` to its creator, and joining one attaches ``ReadWrite`` to the new member,
in the transaction that does it. :mod:`lamina_server.authz.store` owns everything else.

Subjects and principals are stored as ``(type, id)`` with no foreign key: users, groups, roles
and agents live in different tables (some of them in other domains).

Every write that can change what some principal may do calls :func:`bump_epoch` in its own
transaction; the authorizer caches compiled effective policies per principal and trusts its
cache only while the epoch it read is the current one, in this process and in any other that
shares the database.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.identity.tables import memberships
from lamina_server.storage.columns import UtcDateTime, utcnow
from lamina_server.storage.db import changed_access, metadata

# The built-in policies: the same ids in every organization, never stored as rows.
ORG_ADMIN = "OrgAdmin"
READ_ONLY = "ReadOnly"
READ_WRITE = "ReadWrite"
BUILTIN_NAMES = (ORG_ADMIN, READ_ONLY, READ_WRITE)
_BUILTIN_NAMESPACE = uuid.UUID("6f1c8f0e-3b7a-4d55-9a53-1b0c2f0d6a11")
BUILTIN_IDS = {name: str(uuid.uuid5(_BUILTIN_NAMESPACE, name)) for name in BUILTIN_NAMES}
# What a member gets when it joins; the creator of an organization gets OrgAdmin.
DEFAULT_MEMBER_POLICY = READ_WRITE

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.String(1024), nullable=False, default=""),
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("organization_id", "name"),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column(
        "group_id", sa.String(36), sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("subject_type", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.String(36), primary_key=True),
    sa.Column("organization_id", sa.String(36), nullable=False),
    sa.Column("added_at", UtcDateTime(), nullable=False),
    sa.Index("ix_group_members_subject", "organization_id", "subject_type", "subject_id"),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.String(1024), nullable=False, default=""),
    sa.Column("policy_text", sa.Text(), nullable=False),
    sa.Column("language", sa.String(8), nullable=False, default="dsl"),  # "dsl" | "rego"
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("organization_id", "name"),
)

policy_attachments = sa.Table(
    "policy_attachments",
    metadata,
    sa.Column("organization_id", sa.String(36), primary_key=True),
    # A stored policy's id, or one of BUILTIN_IDS (so no foreign key).
    sa.Column("policy_id", sa.String(36), primary_key=True),
    sa.Column("principal_type", sa.String(16), primary_key=True),
    sa.Column("principal_id", sa.String(36), primary_key=True),
    sa.Column("attached_by_type", sa.String(16), nullable=False),
    sa.Column("attached_by", sa.String(36), nullable=False),
    sa.Column("attached_at", UtcDateTime(), nullable=False),
    sa.Index(
        "ix_policy_attachments_principal", "organization_id", "principal_type", "principal_id"
    ),
)

# One row (id 1): bumped by every change to groups, memberships, policies and attachments.
authz_epoch = sa.Table(
    "authz_epoch",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

EPOCH_QUERY = sa.select(authz_epoch.c.value).where(authz_epoch.c.id == 1)


async def bump_epoch(conn: AsyncConnection) -> None:
    """Invalidates every process's cache of keys, memberships and effective policies when
    ``conn`` commits: the epoch they are checked against moves, and (on one machine) the
    shared change signal tells them to check."""
    await conn.execute(
        authz_epoch.update().where(authz_epoch.c.id == 1).values(value=authz_epoch.c.value + 1)
    )
    changed_access(conn)


async def attach(
    conn: AsyncConnection,
    org_id: str,
    policy_id: str,
    principal: tuple[str, str],
    by: tuple[str, str],
) -> bool:
    """Attaches a policy; ``False`` when it already was. Bumps the epoch when it attaches."""
    exists = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(policy_attachments)
        .where(
            policy_attachments.c.organization_id == org_id,
            policy_attachments.c.policy_id == policy_id,
            policy_attachments.c.principal_type == principal[0],
            policy_attachments.c.principal_id == principal[1],
        )
    )
    if exists:
        return False
    await conn.execute(
        policy_attachments.insert().values(
            organization_id=org_id,
            policy_id=policy_id,
            principal_type=principal[0],
            principal_id=principal[1],
            attached_by_type=by[0],
            attached_by=by[1],
            attached_at=utcnow(),
        )
    )
    await bump_epoch(conn)
    return True


async def forget_subject(conn: AsyncConnection, org_id: str, subject: tuple[str, str]) -> None:
    """Removes a subject's attachments and group memberships in an organization (it left)."""
    await conn.execute(
        policy_attachments.delete().where(
            policy_attachments.c.organization_id == org_id,
            policy_attachments.c.principal_type == subject[0],
            policy_attachments.c.principal_id == subject[1],
        )
    )
    await conn.execute(
        group_members.delete().where(
            group_members.c.organization_id == org_id,
            group_members.c.subject_type == subject[0],
            group_members.c.subject_id == subject[1],
        )
    )
    await bump_epoch(conn)


async def initialize(conn: AsyncConnection) -> None:
    """Creates the access epoch on a new database (members are granted as they join:
    :func:`admit`)."""
    if await conn.scalar(EPOCH_QUERY) is None:
        await conn.execute(authz_epoch.insert().values(id=1, value=0))


async def admit(
    conn: AsyncConnection, org_id: str, user_id: str, *, role: str, joined_at: datetime
) -> None:
    """Makes ``user_id`` a member of ``org_id`` with ``role``, and grants what the role comes
    with (an admin ``OrgAdmin``, a member ``DEFAULT_MEMBER_POLICY``), in ``conn``'s transaction:
    the one way anyone joins an organization."""
    await conn.execute(
        memberships.insert().values(
            organization_id=org_id, user_id=user_id, joined_at=joined_at, role=role
        )
    )
    policy = ORG_ADMIN if role == "admin" else DEFAULT_MEMBER_POLICY
    await attach(conn, org_id, BUILTIN_IDS[policy], ("user", user_id), ("user", user_id))
