"""The group graph of an organization: who is in which group, directly or through nested
groups, cycles, and the subjects memberships and attachments name."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.authz.errors import SubjectNotFound
from lamina_server.authz.records import EffectiveGroup, Subject, describe
from lamina_server.identity import OrganizationRecord
from lamina_server.identity.grants import group_members, groups
from lamina_server.identity.tables import memberships, users


async def check_subject(conn: AsyncConnection, org: OrganizationRecord, subject: Subject) -> None:
    kind, sid = subject
    if kind == "user":
        found = await conn.scalar(
            sa.select(memberships.c.user_id).where(
                memberships.c.organization_id == org.id, memberships.c.user_id == sid
            )
        )
    elif kind == "group":
        found = await conn.scalar(
            sa.select(groups.c.id).where(groups.c.organization_id == org.id, groups.c.id == sid)
        )
    else:
        return
    if found is None:
        raise SubjectNotFound(describe(subject), org.name)


async def parents_of(conn: AsyncConnection, org_id: str) -> dict[str, list[str]]:
    """Group id -> the groups it is a member of, for the whole organization."""
    rows = await conn.execute(
        sa.select(group_members.c.subject_id, group_members.c.group_id).where(
            group_members.c.organization_id == org_id, group_members.c.subject_type == "group"
        )
    )
    parents: dict[str, list[str]] = {}
    for child, parent in rows:
        parents.setdefault(child, []).append(parent)
    return parents


async def find_cycle(
    conn: AsyncConnection, org: OrganizationRecord, parent: str, child: str
) -> list[str] | None:
    """The cycle that making group ``child`` a member of group ``parent`` would close, as group
    names from ``parent`` back to itself, or ``None``."""
    parents = await parents_of(conn, org.id)
    # A cycle exists when ``parent`` is ``child`` or already (transitively) inside ``child``.
    trail: dict[str, str | None] = {parent: None}
    frontier = [parent]
    while frontier and child not in trail:
        step = []
        for gid in frontier:
            for up in parents.get(gid, []):
                if up not in trail:
                    trail[up] = gid
                    step.append(up)
        frontier = step
    if child not in trail:
        return None
    path: list[str] = []
    node: str | None = child
    while node is not None:
        path.append(node)
        node = trail[node]
    rows = await conn.execute(sa.select(groups.c.id, groups.c.name).where(groups.c.id.in_(path)))
    names = {row.id: row.name for row in rows}
    # parent -> child (the new edge) -> ... -> parent
    return [names.get(parent, parent)] + [names.get(gid, gid) for gid in path]


async def groups_of(conn: AsyncConnection, org_id: str, subject: Subject) -> list[EffectiveGroup]:
    direct = [
        row[0]
        for row in await conn.execute(
            sa.select(group_members.c.group_id).where(
                group_members.c.organization_id == org_id,
                group_members.c.subject_type == subject[0],
                group_members.c.subject_id == subject[1],
            )
        )
    ]
    if not direct:
        return []
    parents = await parents_of(conn, org_id)
    via: dict[str, str | None] = {gid: None for gid in direct}
    frontier = list(direct)
    while frontier:
        step = []
        for gid in frontier:
            for up in parents.get(gid, []):
                if up not in via:
                    via[up] = gid
                    step.append(up)
        frontier = step
    rows = await conn.execute(sa.select(groups).where(groups.c.id.in_(list(via))))
    by_id = {row.id: row for row in rows}
    result = []
    for gid, child in via.items():
        row = by_id.get(gid)
        if row is None:
            continue
        if child is None:
            result.append(EffectiveGroup(gid, row.name, row.description, "direct", ""))
        else:
            result.append(
                EffectiveGroup(gid, row.name, row.description, "group", by_id[child].name)
            )
    return result


async def names_of(
    conn: AsyncConnection, org: OrganizationRecord, subjects: Iterable[Subject]
) -> dict[Subject, tuple[str, str]]:
    """(display name, username) of users and groups; roles and agents stay unnamed here."""
    wanted = set(subjects)
    user_ids = [sid for kind, sid in wanted if kind == "user"]
    group_ids = [sid for kind, sid in wanted if kind == "group"]
    names: dict[Subject, tuple[str, str]] = {}
    if user_ids:
        rows = await conn.execute(
            sa.select(users.c.id, users.c.username, users.c.full_name).where(
                users.c.id.in_(user_ids)
            )
        )
        for row in rows:
            names[("user", row.id)] = (row.full_name or row.username, row.username)
    if group_ids:
        rows = await conn.execute(
            sa.select(groups.c.id, groups.c.name).where(groups.c.id.in_(group_ids))
        )
        for row in rows:
            names[("group", row.id)] = (row.name, "")
    return names
