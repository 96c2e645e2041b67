"""Agents: automated principals with API keys (``tak-``), metadata and an inline policy."""

from __future__ import annotations

from datetime import datetime

from attrs import field, frozen


@frozen
class AgentData:
    """An agent as the API returns it (``GET /organizations/{org}/agents/{name}``)."""

    id: str
    name: str
    organization_id: str = ""
    description: str = ""
    metadata: dict[str, str] = field(factory=dict)
    inline_policy: str = ""
    inline_policy_updated_at: datetime | None = None
    created_by_type: str = ""
    created_by: str = ""
    created_by_name: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None
