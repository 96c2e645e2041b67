"""Groups, policies and attachments: what the API manages and what the authorizer evaluates.

Every write runs in one transaction with :func:`~lamina_server.identity.grants.bump_epoch`, so
that a change takes effect on the next request, in this process and in any other.

Built-in policies are not rows: they have fixed ids (:data:`BUILTIN_IDS`), appear in every
organization's listing, can be attached and detached, and cannot be changed or deleted.
Subjects of group memberships and attachments are ``(type, id)`` pairs: a user must be a member
of the organization and a group one of its groups; roles and agents are taken as given (their
tables belong to another domain). The records it answers are :mod:`.records`; the group graph
(nesting, cycles, who is in which group) is :mod:`.graph`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.authz.errors import (
    AlreadyAttached,
    AlreadyInGroup,
    BuiltinPolicy,
    GroupCycle,
    GroupExists,
    GroupNotFound,
    NotAttached,
    NotInGroup,
    PolicyExists,
    PolicyNotFound,
)
from lamina_server.authz.graph import (
    check_subject,
    find_cycle,
    groups_of,
    names_of,
)
from lamina_server.authz.records import (
    BUILTIN_BY_ID,
    AttachmentRecord,
    EffectiveGroup,
    EffectivePolicy,
    GroupRecord,
    MemberRecord,
    PolicyRecord,
    Subject,
    describe,
    group_record,
    policy_record,
)
from lamina_server.identity import OrganizationRecord
from lamina_server.identity.grants import (
    BUILTIN_IDS,
    EPOCH_QUERY,
    attach,
    bump_epoch,
    group_members,
    groups,
    initialize,
    policies,
    policy_attachments,
)
from lamina_server.identity.tables import agents
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database


class AccessStore:
    """Groups, policies and attachments of organizations (see the module docstring)."""

    def __init__(self, db: Database, builtin_texts: Mapping[str, str]) -> None:
        self._db = db
        self._builtin_texts = builtin_texts

    async def initialize(self) -> None:
        async with self._db.begin() as conn:
            await initialize(conn)

    async def epoch(self) -> int:
        async with self._db.connect() as conn:
            return int(await conn.scalar(EPOCH_QUERY) or 0)

    def builtin(self, org: OrganizationRecord, name: str) -> PolicyRecord:
        return PolicyRecord(
            id=BUILTIN_IDS[name],
            organization_id=org.id,
            name=name,
            description=f"Built-in policy {name}",
            policy_text=self._builtin_texts[name],
            is_builtin=True,
            created_by_type="user",
            created_by="",
            created_at=org.created_at,
            updated_at=org.created_at,
        )

    # --- groups ---------------------------------------------------------------------------

    async def list_groups(
        self, org: OrganizationRecord, after: str | None, amount: int
    ) -> tuple[list[GroupRecord], bool]:
        query = sa.select(groups).where(groups.c.organization_id == org.id)
        if after:
            query = query.where(groups.c.name > after)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query.order_by(groups.c.name).limit(amount + 1))).all()
        return [group_record(row) for row in rows[:amount]], len(rows) > amount

    async def create_group(
        self, org: OrganizationRecord, name: str, description: str, by: Principal
    ) -> GroupRecord:
        record = GroupRecord(str(uuid.uuid4()), org.id, name, description, by.type, by.id, utcnow())
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    groups.insert().values(
                        id=record.id,
                        organization_id=org.id,
                        name=name,
                        description=description,
                        created_by_type=by.type,
                        created_by=by.id,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError:
            raise GroupExists(name) from None
        return record

    async def _group_row(self, conn: AsyncConnection, org: OrganizationRecord, gid: str) -> Any:
        row = (
            await conn.execute(
                sa.select(groups).where(groups.c.organization_id == org.id, groups.c.id == gid)
            )
        ).first()
        if row is None:
            raise GroupNotFound(gid)
        return row

    async def get_group(self, org: OrganizationRecord, gid: str) -> GroupRecord:
        async with self._db.connect() as conn:
            return group_record(await self._group_row(conn, org, gid))

    async def update_group(
        self, org: OrganizationRecord, gid: str, name: str | None, description: str | None
    ) -> GroupRecord:
        values = {
            key: value
            for key, value in (("name", name), ("description", description))
            if value is not None
        }
        try:
            async with self._db.begin() as conn:
                await self._group_row(conn, org, gid)
                if values:
                    await conn.execute(groups.update().where(groups.c.id == gid).values(**values))
                row = await self._group_row(conn, org, gid)
        except IntegrityError:
            raise GroupExists(str(name)) from None
        return group_record(row)

    async def delete_group(self, org: OrganizationRecord, gid: str) -> None:
        async with self._db.begin() as conn:
            await self._group_row(conn, org, gid)
            await conn.execute(group_members.delete().where(group_members.c.group_id == gid))
            await conn.execute(
                group_members.delete().where(
                    group_members.c.organization_id == org.id,
                    group_members.c.subject_type == "group",
                    group_members.c.subject_id == gid,
                )
            )
            await conn.execute(
                policy_attachments.delete().where(
                    policy_attachments.c.organization_id == org.id,
                    policy_attachments.c.principal_type == "group",
                    policy_attachments.c.principal_id == gid,
                )
            )
            await conn.execute(groups.delete().where(groups.c.id == gid))
            await bump_epoch(conn)

    async def members(self, org: OrganizationRecord, gid: str) -> list[MemberRecord]:
        async with self._db.connect() as conn:
            await self._group_row(conn, org, gid)
            rows = (
                await conn.execute(
                    sa.select(group_members)
                    .where(group_members.c.group_id == gid)
                    .order_by(group_members.c.added_at, group_members.c.subject_id)
                )
            ).all()
            names = await names_of(conn, org, ((row.subject_type, row.subject_id) for row in rows))
        result = []
        for row in rows:
            display, username = names.get((row.subject_type, row.subject_id), ("", ""))
            result.append(
                MemberRecord(row.subject_type, row.subject_id, display, username, row.added_at)
            )
        return result

    async def add_member(self, org: OrganizationRecord, gid: str, subject: Subject) -> None:
        async with self._db.begin() as conn:
            group = await self._group_row(conn, org, gid)
            await check_subject(conn, org, subject)
            if subject[0] == "group":
                cycle = await find_cycle(conn, org, gid, subject[1])
                if cycle is not None:
                    raise GroupCycle(cycle)
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        group_members.insert().values(
                            group_id=gid,
                            subject_type=subject[0],
                            subject_id=subject[1],
                            organization_id=org.id,
                            added_at=utcnow(),
                        )
                    )
            except IntegrityError:
                raise AlreadyInGroup(describe(subject), group.name) from None
            await bump_epoch(conn)

    async def remove_member(self, org: OrganizationRecord, gid: str, subject: Subject) -> None:
        async with self._db.begin() as conn:
            group = await self._group_row(conn, org, gid)
            result = await conn.execute(
                group_members.delete().where(
                    group_members.c.group_id == gid,
                    group_members.c.subject_type == subject[0],
                    group_members.c.subject_id == subject[1],
                )
            )
            if result.rowcount == 0:
                raise NotInGroup(describe(subject), group.name)
            await bump_epoch(conn)

    async def effective_groups(
        self, org: OrganizationRecord, subject: Subject
    ) -> list[EffectiveGroup]:
        async with self._db.connect() as conn:
            return await groups_of(conn, org.id, subject)

    # --- policies -------------------------------------------------------------------------

    async def _counts(self, conn: AsyncConnection, org: OrganizationRecord) -> dict[str, int]:
        rows = await conn.execute(
            sa.select(policy_attachments.c.policy_id, sa.func.count())
            .where(policy_attachments.c.organization_id == org.id)
            .group_by(policy_attachments.c.policy_id)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def list_policies(
        self, org: OrganizationRecord, after: str | None, amount: int
    ) -> tuple[list[PolicyRecord], bool]:
        """Built-ins and stored policies, by name."""
        async with self._db.connect() as conn:
            counts = await self._counts(conn, org)
            query = sa.select(policies).where(policies.c.organization_id == org.id)
            if after:
                query = query.where(policies.c.name > after)
            rows = (await conn.execute(query.order_by(policies.c.name).limit(amount + 1))).all()
        found = [policy_record(row, counts.get(row.id, 0)) for row in rows]
        for name, policy_id in BUILTIN_IDS.items():
            if after is None or name > after:
                builtin = self.builtin(org, name)
                found.append(_with_count(builtin, counts.get(policy_id, 0)))
        found.sort(key=lambda policy: policy.name)
        return found[:amount], len(found) > amount

    async def _policy_row(
        self, conn: AsyncConnection, org: OrganizationRecord, pid: str
    ) -> PolicyRecord:
        name = BUILTIN_BY_ID.get(pid)
        if name is not None:
            return self.builtin(org, name)
        row = (
            await conn.execute(
                sa.select(policies).where(
                    policies.c.organization_id == org.id, policies.c.id == pid
                )
            )
        ).first()
        if row is None:
            raise PolicyNotFound(pid)
        return policy_record(row)

    async def get_policy(self, org: OrganizationRecord, pid: str) -> PolicyRecord:
        """A policy by id, an agent's inline one too (``inline:<agent id>``, the id the
        effective policies name it by)."""
        async with self._db.connect() as conn:
            if pid.startswith(INLINE_PREFIX):
                inline = await _inline_policy(conn, org.id, pid.removeprefix(INLINE_PREFIX))
                if inline is None:
                    raise PolicyNotFound(pid)
                return inline.policy
            return await self._policy_row(conn, org, pid)

    async def create_policy(
        self,
        org: OrganizationRecord,
        *,
        name: str,
        text: str,
        description: str,
        by: Principal,
        language: str = "dsl",
    ) -> PolicyRecord:
        if name in BUILTIN_IDS:
            raise PolicyExists(name)
        now = utcnow()
        record = PolicyRecord(
            str(uuid.uuid4()),
            org.id,
            name,
            description,
            text,
            False,
            by.type,
            by.id,
            now,
            now,
            language=language,
        )
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    policies.insert().values(
                        id=record.id,
                        organization_id=org.id,
                        name=name,
                        description=description,
                        policy_text=text,
                        language=language,
                        created_by_type=by.type,
                        created_by=by.id,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise PolicyExists(name) from None
        return record

    async def update_policy(
        self,
        org: OrganizationRecord,
        pid: str,
        *,
        name: str | None,
        description: str | None,
        text: str | None,
        language: str | None = None,
    ) -> PolicyRecord:
        if pid in BUILTIN_BY_ID:
            raise BuiltinPolicy(BUILTIN_BY_ID[pid])
        if name in BUILTIN_IDS:
            raise PolicyExists(str(name))
        values: dict[str, Any] = {
            key: value
            for key, value in (
                ("name", name),
                ("description", description),
                ("policy_text", text),
                ("language", language),
            )
            if value is not None
        }
        values["updated_at"] = utcnow()
        try:
            async with self._db.begin() as conn:
                await self._policy_row(conn, org, pid)
                await conn.execute(policies.update().where(policies.c.id == pid).values(**values))
                if text is not None:
                    await bump_epoch(conn)
                return await self._policy_row(conn, org, pid)
        except IntegrityError:
            raise PolicyExists(str(name)) from None

    async def delete_policy(self, org: OrganizationRecord, pid: str) -> None:
        if pid in BUILTIN_BY_ID:
            raise BuiltinPolicy(BUILTIN_BY_ID[pid])
        async with self._db.begin() as conn:
            await self._policy_row(conn, org, pid)
            await conn.execute(
                policy_attachments.delete().where(
                    policy_attachments.c.organization_id == org.id,
                    policy_attachments.c.policy_id == pid,
                )
            )
            await conn.execute(policies.delete().where(policies.c.id == pid))
            await bump_epoch(conn)

    # --- attachments ----------------------------------------------------------------------

    async def attach(
        self, org: OrganizationRecord, pid: str, principal: Subject, by: Principal
    ) -> None:
        async with self._db.begin() as conn:
            policy = await self._policy_row(conn, org, pid)
            await check_subject(conn, org, principal)
            if not await attach(conn, org.id, pid, principal, (by.type, by.id)):
                raise AlreadyAttached(policy.name, describe(principal))

    async def detach(self, org: OrganizationRecord, pid: str, principal: Subject) -> None:
        async with self._db.begin() as conn:
            policy = await self._policy_row(conn, org, pid)
            result = await conn.execute(
                policy_attachments.delete().where(
                    policy_attachments.c.organization_id == org.id,
                    policy_attachments.c.policy_id == pid,
                    policy_attachments.c.principal_type == principal[0],
                    policy_attachments.c.principal_id == principal[1],
                )
            )
            if result.rowcount == 0:
                raise NotAttached(policy.name, describe(principal))
            await bump_epoch(conn)

    async def attachments(
        self,
        org: OrganizationRecord,
        *,
        policy_id: str | None = None,
        principal: Subject | None = None,
    ) -> list[AttachmentRecord]:
        query = sa.select(policy_attachments).where(policy_attachments.c.organization_id == org.id)
        if policy_id is not None:
            query = query.where(policy_attachments.c.policy_id == policy_id)
        if principal is not None:
            query = query.where(
                policy_attachments.c.principal_type == principal[0],
                policy_attachments.c.principal_id == principal[1],
            )
        query = query.order_by(policy_attachments.c.attached_at, policy_attachments.c.principal_id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
            names = await names_of(
                conn, org, ((row.principal_type, row.principal_id) for row in rows)
            )
            policy_names = await self._policy_names(conn, org, {row.policy_id for row in rows})
        return [
            AttachmentRecord(
                policy_id=row.policy_id,
                policy_name=policy_names.get(row.policy_id, ""),
                is_builtin=row.policy_id in BUILTIN_BY_ID,
                principal_type=row.principal_type,
                principal_id=row.principal_id,
                principal_name=names.get((row.principal_type, row.principal_id), ("", ""))[0],
                attached_by_type=row.attached_by_type,
                attached_by=row.attached_by,
                attached_at=row.attached_at,
            )
            for row in rows
        ]

    async def _policy_names(
        self, conn: AsyncConnection, org: OrganizationRecord, ids: set[str]
    ) -> dict[str, str]:
        found = {pid: BUILTIN_BY_ID[pid] for pid in ids if pid in BUILTIN_BY_ID}
        stored = ids - set(found)
        if stored:
            rows = await conn.execute(
                sa.select(policies.c.id, policies.c.name).where(policies.c.id.in_(stored))
            )
            found.update({row.id: row.name for row in rows})
        return found

    async def effective_policies(
        self, org: OrganizationRecord, subject: Subject
    ) -> list[EffectivePolicy]:
        """The policies attached to ``subject`` and to every group it is in (transitively):
        what the authorizer evaluates for it. One consistent snapshot."""
        async with self._db.connect() as conn, conn.begin():
            return await self._effective(conn, org, subject)

    async def _effective(
        self, conn: AsyncConnection, org: OrganizationRecord, subject: Subject
    ) -> list[EffectivePolicy]:
        in_groups = await groups_of(conn, org.id, subject)
        holders: dict[Subject, tuple[str, str]] = {subject: ("direct", "")}
        for group in in_groups:
            holders.setdefault(("group", group.group_id), ("group", group.group_name))
        group_ids = [gid for kind, gid in holders if kind == "group"]
        rows = (
            await conn.execute(
                sa.select(
                    policy_attachments.c.policy_id,
                    policy_attachments.c.principal_type,
                    policy_attachments.c.principal_id,
                ).where(
                    policy_attachments.c.organization_id == org.id,
                    sa.or_(
                        sa.and_(
                            policy_attachments.c.principal_type == subject[0],
                            policy_attachments.c.principal_id == subject[1],
                        ),
                        sa.and_(
                            policy_attachments.c.principal_type == "group",
                            policy_attachments.c.principal_id.in_(group_ids),
                        ),
                    ),
                )
            )
        ).all()
        stored_ids = {row.policy_id for row in rows if row.policy_id not in BUILTIN_BY_ID}
        stored: dict[str, PolicyRecord] = {}
        if stored_ids:
            found = await conn.execute(sa.select(policies).where(policies.c.id.in_(stored_ids)))
            stored = {row.id: policy_record(row) for row in found}
        result: list[EffectivePolicy] = []
        seen: set[tuple[str, str, str]] = set()
        for row in rows:
            source, source_name = holders[(row.principal_type, row.principal_id)]
            name = BUILTIN_BY_ID.get(row.policy_id)
            policy = self.builtin(org, name) if name else stored.get(row.policy_id)
            if policy is None or (row.policy_id, source, source_name) in seen:
                continue
            seen.add((row.policy_id, source, source_name))
            result.append(EffectivePolicy(policy, source, source_name))
        result.sort(key=lambda item: (item.source != "direct", item.source_name, item.policy.name))
        if subject[0] == "agent":
            inline = await _inline_policy(conn, org.id, subject[1])
            if inline is not None:
                result.append(inline)
        return result


INLINE_PREFIX = "inline:"  # an agent's inline policy's id: inline:<agent id>


async def _inline_policy(
    conn: AsyncConnection, org_id: str, agent_id: str
) -> EffectivePolicy | None:
    """An agent's own policy, written on the agent (``inline_policy``), if it has one."""
    row = (
        await conn.execute(
            sa.select(
                agents.c.name,
                agents.c.inline_policy,
                agents.c.inline_policy_updated_at,
                agents.c.created_by_type,
                agents.c.created_by,
                agents.c.created_at,
            ).where(agents.c.id == agent_id, agents.c.organization_id == org_id)
        )
    ).first()
    if row is None or not row.inline_policy:
        return None
    policy = PolicyRecord(
        f"{INLINE_PREFIX}{agent_id}",
        org_id,
        f"{row.name} (inline)",
        "the agent's inline policy",
        row.inline_policy,
        False,
        row.created_by_type,
        row.created_by,
        row.created_at,
        row.inline_policy_updated_at or row.created_at,
    )
    return EffectivePolicy(policy, "inline", row.name)


def _with_count(policy: PolicyRecord, count: int) -> PolicyRecord:
    return replace(policy, attachment_count=count)
