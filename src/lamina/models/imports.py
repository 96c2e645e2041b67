"""Connectors (an organization's external sources) and import jobs."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

#: An import job's statuses that mean it has ended.
IMPORT_ENDED = ("completed", "failed", "canceled")


@frozen
class ConnectorData:
    """A connector as the API returns it: never its credentials."""

    id: str
    name: str = ""
    type: str = ""
    source_uri: str = ""
    display_source: str = ""
    disabled: bool = False
    public_key: str | None = None
    created_at: datetime | None = None


@frozen
class ConnectionTest:
    """A connection test that succeeded (a failed one raises :class:`~lamina.ServerError`
    502 naming the cause)."""

    status: str


@frozen
class ImportJobData:
    """An import job: ``status`` is ``pending``, ``running``, ``completed`` or ``failed``;
    a failed job's ``error`` says why (nothing was imported) and ``error_code`` what kind
    (``source_changed``, ``source_unreachable``, ``forbidden``, ``conflict``...)."""

    id: str
    status: str = ""
    repository_id: str = ""
    connector_id: str | None = None
    source_repository_id: str | None = None
    source_organization: str = ""
    source_repository: str = ""
    source_commit_id: str | None = None
    source_prefix: str = ""
    destination_path: str = ""
    commit_message: str = ""
    objects_imported: int = 0
    objects_unchanged: int = 0
    commit_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@frozen
class StartedImport:
    job_id: str
