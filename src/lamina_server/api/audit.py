"""The audit log of an organization: its entries, filtered, limit/offset paged
(:mod:`lamina_server.governance.audit`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action
from lamina_server.api.errors import bad_request
from lamina_server.api.pagination import OffsetParams, offset_envelope, offset_params
from lamina_server.api.params import ORG, ServicesDep
from lamina_server.api.schemas import error_responses
from lamina_server.authz import Action
from lamina_server.governance.audit import AuditFilter

router = APIRouter(tags=["Audit"], route_class=LaminaRoute)


class AuditEntryBody(BaseModel):
    id: str
    organization_id: str
    seq: int
    timestamp_us: int
    created_at: str
    principal_type: str
    principal_id: str
    principal_name: str
    action: str
    resource: str
    resource_kind: str
    resource_id: str
    outcome: str
    request_id: str
    client_address: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryBody]
    limit: int
    offset: int
    total: int


def parse_time(value: str | None, field: str) -> int | None:
    """An ISO-8601 time (``Z`` or an offset; naive is UTC) as microseconds since the epoch."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{field}: {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000)


async def audit_filter(
    action: Annotated[str | None, Query(description="An action, e.g. CommitSession")] = None,
    resource_kind: Annotated[
        str | None, Query(description="organization, repository, object, session, sandbox…")
    ] = None,
    resource_id: Annotated[str | None, Query(description="The resource's id or name")] = None,
    principal: Annotated[str | None, Query(description="A principal's id or name")] = None,
    outcome: Annotated[
        str | None, Query(description="success, denied, approval_required, approved, rejected")
    ] = None,
    since: Annotated[str | None, Query(description="ISO-8601: entries at or after")] = None,
    until: Annotated[str | None, Query(description="ISO-8601: entries before")] = None,
) -> AuditFilter:
    return AuditFilter(
        action=action or None,
        resource_kind=resource_kind or None,
        resource_id=resource_id or None,
        principal=principal or None,
        outcome=outcome or None,
        since_us=parse_time(since, "since"),
        until_us=parse_time(until, "until"),
    )


AuditFilterDep = Annotated[AuditFilter, Depends(audit_filter)]
OffsetDep = Annotated[OffsetParams, Depends(offset_params)]


@router.get(
    f"{ORG}/audit-log",
    summary="The organization's audit log (oldest first), filtered and limit/offset paged",
    response_model=AuditPage,
    responses=error_responses(400, 403, 404),
    dependencies=[organization_action(Action.READ_AUDIT_LOG)],
)
async def list_audit_log(
    services: ServicesDep, access: AccessDep, where: AuditFilterDep, page: OffsetDep
) -> JSONResponse:
    items, total = await services.audit.page(
        access.org.id, where, limit=page.limit, offset=page.offset
    )
    return JSONResponse(offset_envelope(items, page, total))
