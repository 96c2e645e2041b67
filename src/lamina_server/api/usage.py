"""An organization's usage summary (:mod:`lamina_server.governance.usage`): what it stores,
its commits, sandbox runs and seconds, governed runs by outcome, and its evidence packs paged
by ``evidence_limit``/``evidence_offset`` (the shape ``/api/v2/usage/summary`` answers too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action
from lamina_server.api.params import ORG, ServicesDep
from lamina_server.api.schemas import error_responses
from lamina_server.authz import Action
from lamina_server.governance.usage import EvidencePage
from lamina_server.velerian.routes_governance import UsageBody, evidence_page

router = APIRouter(tags=["Usage"], route_class=LaminaRoute)


@router.get(
    f"{ORG}/usage/summary",
    summary="The organization's usage; its evidence packs paged by evidence_limit/offset",
    response_model=UsageBody,
    responses=error_responses(400, 404),
    dependencies=[organization_action(Action.READ_AUDIT_LOG)],
)
async def usage_summary(
    services: ServicesDep,
    access: AccessDep,
    evidence: Annotated[EvidencePage, Depends(evidence_page)],
) -> JSONResponse:
    return JSONResponse(await services.usage.summary(access.org.id, access.org.name, evidence))
