"""``/api/v2`` audit log, usage summary and evidence exports::

GET /audit-log        ?action&resource_kind&resource_id&actor_user_id&since&until&limit&offset
GET /usage/summary    ?evidence_limit&evidence_offset
GET /abps/{abp_id}/invocations/{run_id}/evidence        ?format=zip
GET /abps/{abp_id}/evidence-package?since=ISO           ?format=zip
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lamina_server.api.access import AccessDep, LaminaRoute
from lamina_server.api.audit import AuditPage, parse_time
from lamina_server.api.evidence import MAX_BUNDLE_PACKS, ExportBody, export_json
from lamina_server.api.pagination import MAX_LIMIT, OffsetParams, offset_envelope, offset_params
from lamina_server.api.params import ServicesDep
from lamina_server.authz import Action
from lamina_server.governance.audit import AuditFilter
from lamina_server.governance.usage import EvidencePage
from lamina_server.velerian.abps import AbpRecord
from lamina_server.velerian.access import AbpId, GrantDep, On, velerian
from lamina_server.velerian.errors import Conflict, Invalid, NotFound
from lamina_server.velerian.evidence_links import newest_pack, s3_key
from lamina_server.versioning.codec import to_micros

router = APIRouter(tags=["Audit, usage and evidence"], route_class=LaminaRoute)

OffsetDep = Annotated[OffsetParams, Depends(offset_params)]
FORMATS = ("zip",)


class UsageBody(BaseModel):
    tenant_id: str
    organization: str
    as_of: str
    repositories: int
    objects: dict[str, int]
    commits: int
    sandbox_runs: int
    sandbox_seconds: float
    governed_runs: dict[str, Any]
    evidence_packs: list[dict[str, Any]]
    evidence_packs_page: dict[str, Any]


def _format(value: str | None) -> str:
    if value not in (None, "", *FORMATS):
        raise Invalid(f"format: must be one of {', '.join(FORMATS)}, got {value!r}")
    return "zip"


@router.get(
    "/audit-log",
    summary="The key organization's audit log, oldest first (limit/offset)",
    response_model=AuditPage,
    dependencies=[velerian("audit:read", Action.READ_AUDIT_LOG, on=On.TENANT)],
)
async def velerian_audit_log(
    services: ServicesDep,
    access: AccessDep,
    page: OffsetDep,
    action: Annotated[str | None, Query(description="e.g. abp.invoke, CommitSession")] = None,
    resource_kind: Annotated[str | None, Query(description="abp, run, approval…")] = None,
    resource_id: Annotated[str | None, Query()] = None,
    actor_user_id: Annotated[str | None, Query(description="A principal's id or name")] = None,
    since: Annotated[str | None, Query(description="ISO-8601: entries at or after")] = None,
    until: Annotated[str | None, Query(description="ISO-8601: entries before")] = None,
) -> JSONResponse:
    where = AuditFilter(
        action=action or None,
        resource_kind=resource_kind or None,
        resource_id=resource_id or None,
        principal=actor_user_id or None,
        since_us=parse_time(since, "since"),
        until_us=parse_time(until, "until"),
    )
    items, total = await services.audit.page(
        access.org.id, where, limit=page.limit, offset=page.offset
    )
    return JSONResponse(offset_envelope(items, page, total))


async def evidence_page(
    evidence_limit: Annotated[
        int, Query(description=f"Evidence packs per page (1-{MAX_LIMIT})", ge=1, le=MAX_LIMIT)
    ] = 50,
    evidence_offset: Annotated[int, Query(description="Evidence packs to skip", ge=0)] = 0,
) -> EvidencePage:
    return EvidencePage(limit=evidence_limit, offset=evidence_offset)


@router.get(
    "/usage/summary",
    summary="The key organization's usage; its evidence packs paged by evidence_limit/offset",
    response_model=UsageBody,
    dependencies=[velerian("read", Action.READ_AUDIT_LOG, on=On.TENANT)],
)
async def velerian_usage_summary(
    services: ServicesDep,
    access: AccessDep,
    evidence: Annotated[EvidencePage, Depends(evidence_page)],
) -> JSONResponse:
    return JSONResponse(await services.usage.summary(access.org.id, access.org.name, evidence))


@router.get(
    "/abps/{abp_id}/invocations/{run_id}/evidence",
    summary="Export the evidence pack of one run (409 while the run has none yet)",
    response_model=ExportBody,
    dependencies=[velerian("evidence:read", Action.EXPORT_EVIDENCE, on=On.ABP)],
)
async def invocation_evidence(
    abp_id: AbpId,
    run_id: Annotated[str, Path(description="Run (invocation) id")],
    request: Request,
    services: ServicesDep,
    access: AccessDep,
    format: Annotated[str | None, Query(description="zip")] = None,
) -> JSONResponse:
    _format(format)
    invocation = await services.velerian.runs.get(access.org.id, run_id)
    if invocation.abp.id != abp_id:
        raise NotFound(f"run {run_id!r} is not an invocation of ABP {abp_id!r}")
    view = await services.velerian.runs.view(invocation)
    pack = None if view.sandbox is None else await newest_pack(services, view.sandbox)
    if pack is None:
        raise Conflict(
            f"run {run_id!r} has no evidence pack yet (it is {view.status}; a pack is made "
            "when its sandbox ends)"
        )
    claims: dict[str, str | int] = {"o": access.org.id, "r": access.repo.id, "p": pack.id}
    return JSONResponse(
        export_json(request, services, claims, s3_key(access.org.name, access.repo.name, pack))
    )


@router.get(
    "/abps/{abp_id}/evidence-package",
    summary="Export the evidence packs of the ABP's repository made since a time, as one bundle",
    response_model=ExportBody,
    dependencies=[velerian("evidence:read", Action.EXPORT_EVIDENCE, on=On.ABP)],
)
async def evidence_package(
    abp_id: AbpId,
    request: Request,
    services: ServicesDep,
    access: AccessDep,
    grant: GrantDep,
    since: Annotated[str, Query(description="ISO-8601: packs made at or after")],
    format: Annotated[str | None, Query(description="zip")] = None,
) -> JSONResponse:
    _format(format)
    abp: AbpRecord = grant.target
    start_us = parse_time(since, "since")
    if start_us is None:
        raise Invalid("since: an ISO-8601 time is required")
    start = datetime.fromtimestamp(start_us / 1_000_000, timezone.utc)
    until = datetime.now(timezone.utc)
    found = await services.evidence.select(
        access.org.id,
        repository_id=abp.repository_id,
        since=start,
        until=until,
        limit=MAX_BUNDLE_PACKS + 1,
    )
    if len(found) > MAX_BUNDLE_PACKS:
        raise Invalid(f"since: more than {MAX_BUNDLE_PACKS} packs since then; pick a later time")
    claims: dict[str, str | int] = {
        "o": access.org.id,
        "r": abp.repository_id,
        "s": to_micros(start),
        "u": to_micros(until),
    }
    stamp = f"{start:%Y%m%dT%H%M%SZ}-until-{until:%Y%m%dT%H%M%SZ}"
    key = f"evidence/{abp.repository}/abp-{abp.id}/since-{stamp}.zip"
    return JSONResponse(export_json(request, services, claims, key))
