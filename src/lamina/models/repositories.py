"""Repositories."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen


@frozen
class RepositoryData:
    """A repository as the API returns it (``GET /organizations/{org}/repositories/{name}``)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    visibility: str = ""
    retention_days: int | None = None
    session_max_duration_days: int | None = None
    created_by_type: str = ""
    created_by: str = ""
    created_at: datetime | None = None
