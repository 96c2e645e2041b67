"""An organization's connectors, and which repositories they are attached to.

A connector's source configuration (credentials included) is sealed under the server's
secrets key exactly as a secret is (:class:`~lamina_server.secrets.Sealer`, its scope the
connector) and is never returned by the API. A deleted connector keeps its row
(``deleted_at``): using it afterwards is :class:`ConnectorGone` (410). A disabled one is
:class:`ConnectorDisabled` (423) until it is enabled again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lamina_server.imports.errors import (
    ConnectorDisabled,
    ConnectorGone,
    ConnectorInvalid,
    ConnectorNotAttached,
    ConnectorNotFound,
)
from lamina_server.imports.s3source import S3Settings, S3Source, parse_s3, settings_from
from lamina_server.imports.tables import connectors, repository_connectors
from lamina_server.principals import Principal
from lamina_server.secrets import Sealer, SecretScope
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

log = logging.getLogger(__name__)

TYPES = ("s3", "gcs", "git", "google_drive")  # what the contract names
SERVED = ("s3",)  # what this server can read
_SEALED_KEY = "config"


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    id: str
    organization_id: str
    name: str
    type: str
    source_uri: str
    disabled: bool
    deleted_at: datetime | None
    created_by_type: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def parse_settings(type_: str, source_uri: str | None, config: Mapping[str, Any]) -> S3Settings:
    """The source a create or test request names; :class:`ConnectorInvalid` otherwise (a type
    this server cannot serve is refused here, not accepted and left broken)."""
    if type_ not in TYPES:
        raise ConnectorInvalid(f"type must be one of {', '.join(TYPES)}, got {type_!r}")
    if type_ not in SERVED:
        raise ConnectorInvalid(
            f"connectors of type {type_!r} are not supported by this server (it reads only: "
            f"{', '.join(SERVED)})"
        )
    return parse_s3(source_uri, config)


async def check_connection(settings: S3Settings) -> None:
    """A real connection check (:class:`~.errors.ConnectionFailed` naming the cause)."""
    await S3Source(settings, timeout=20.0).check()


def _record(row: Any) -> ConnectorRecord:
    return ConnectorRecord(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        type=row.type,
        source_uri=row.source_uri,
        disabled=row.disabled,
        deleted_at=row.deleted_at,
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Connectors:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def create(
        self,
        organization_id: str,
        *,
        name: str,
        type_: str,
        source_uri: str | None,
        config: Mapping[str, Any],
        author: Principal,
    ) -> ConnectorRecord:
        if not name.strip():
            raise ConnectorInvalid("name must not be empty")
        settings = parse_settings(type_, source_uri, config)
        connector_id = str(uuid.uuid4())
        nonce, ciphertext = self._sealer.seal(
            SecretScope("connector", connector_id),
            _SEALED_KEY,
            json.dumps(settings.sealed_form()),
        )
        now = utcnow()
        values: dict[str, Any] = {
            "id": connector_id,
            "organization_id": organization_id,
            "name": name,
            "type": type_,
            "source_uri": settings.source_uri,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "disabled": False,
            "deleted_at": None,
            "created_by_type": author.type,
            "created_by": author.id,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.begin() as conn:
            await conn.execute(sa.insert(connectors).values(**values))
        del values["nonce"], values["ciphertext"]
        return ConnectorRecord(**values)

    async def all(self, organization_id: str) -> list[ConnectorRecord]:
        query = (
            sa.select(connectors)
            .where(
                connectors.c.organization_id == organization_id, connectors.c.deleted_at.is_(None)
            )
            .order_by(connectors.c.created_at, connectors.c.id)
        )
        async with self._db.connect() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def get(self, organization_id: str, connector_id: str) -> ConnectorRecord:
        """The connector (:class:`ConnectorNotFound`; :class:`ConnectorGone` once deleted)."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(connectors).where(
                        connectors.c.id == connector_id,
                        connectors.c.organization_id == organization_id,
                    )
                )
            ).first()
        if row is None:
            raise ConnectorNotFound(connector_id)
        if row.deleted_at is not None:
            raise ConnectorGone(connector_id)
        return _record(row)

    async def usable(self, organization_id: str, connector_id: str) -> ConnectorRecord:
        """The connector, if it may be used now (:class:`ConnectorDisabled` otherwise)."""
        record = await self.get(organization_id, connector_id)
        if record.disabled:
            raise ConnectorDisabled(connector_id)
        return record

    async def settings(self, record: ConnectorRecord) -> S3Settings:
        """The connector's sealed configuration, opened."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(connectors.c.nonce, connectors.c.ciphertext).where(
                        connectors.c.id == record.id
                    )
                )
            ).one()
        opened = self._sealer.open(
            SecretScope("connector", record.id), _SEALED_KEY, row.nonce, row.ciphertext
        )
        if opened is None:
            log.error(
                "connector %s's configuration does not decrypt with this server's key", record.id
            )
            raise ConnectorInvalid(
                f"connector {record.id!r}'s configuration cannot be decrypted with this "
                "server's secrets key (the key changed?); create the connector again"
            )
        return settings_from(json.loads(opened))

    async def delete(self, organization_id: str, connector_id: str) -> None:
        await self.get(organization_id, connector_id)
        now = utcnow()
        async with self._db.begin() as conn:
            await conn.execute(
                sa.update(connectors)
                .where(connectors.c.id == connector_id)
                .values(deleted_at=now, updated_at=now)
            )
            await conn.execute(
                sa.delete(repository_connectors).where(
                    repository_connectors.c.connector_id == connector_id
                )
            )

    async def set_disabled(
        self, organization_id: str, connector_id: str, disabled: bool
    ) -> ConnectorRecord:
        await self.get(organization_id, connector_id)
        async with self._db.begin() as conn:
            await conn.execute(
                sa.update(connectors)
                .where(connectors.c.id == connector_id)
                .values(disabled=disabled, updated_at=utcnow())
            )
        return await self.get(organization_id, connector_id)

    # --- attachments ------------------------------------------------------------------------

    async def attach(self, organization_id: str, repository_id: str, connector_id: str) -> None:
        """Attaches a usable connector (attaching it again changes nothing)."""
        await self.usable(organization_id, connector_id)
        async with self._db.begin() as conn:
            present = (
                await conn.execute(
                    sa.select(repository_connectors.c.connector_id).where(
                        repository_connectors.c.repository_id == repository_id,
                        repository_connectors.c.connector_id == connector_id,
                    )
                )
            ).first()
            if present is None:
                await conn.execute(
                    sa.insert(repository_connectors).values(
                        repository_id=repository_id,
                        connector_id=connector_id,
                        attached_at=utcnow(),
                    )
                )

    async def attached(self, repository_id: str) -> list[ConnectorRecord]:
        query = (
            sa.select(connectors)
            .join(
                repository_connectors,
                repository_connectors.c.connector_id == connectors.c.id,
            )
            .where(
                repository_connectors.c.repository_id == repository_id,
                connectors.c.deleted_at.is_(None),
            )
            .order_by(repository_connectors.c.attached_at, connectors.c.id)
        )
        async with self._db.connect() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def is_attached(self, repository_id: str, connector_id: str) -> bool:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(repository_connectors.c.connector_id).where(
                        repository_connectors.c.repository_id == repository_id,
                        repository_connectors.c.connector_id == connector_id,
                    )
                )
            ).first()
        return row is not None

    async def detach(self, repository_id: str, repository_name: str, connector_id: str) -> None:
        async with self._db.begin() as conn:
            removed = await conn.execute(
                sa.delete(repository_connectors).where(
                    repository_connectors.c.repository_id == repository_id,
                    repository_connectors.c.connector_id == connector_id,
                )
            )
        if removed.rowcount == 0:
            raise ConnectorNotAttached(connector_id, repository_name)
