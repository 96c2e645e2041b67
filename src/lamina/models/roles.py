"""Roles: non-human principals that hold API keys (``trk-``) and policies."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen


@frozen
class RoleData:
    """A role as the API returns it (``GET /organizations/{org}/roles/{name}``)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    created_by_type: str = ""
    created_by: str = ""
    created_by_name: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None
