"""``GET /healthz``: liveness, no authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lamina_server.api.access import LaminaRoute, public

router = APIRouter(tags=["Health"], route_class=LaminaRoute)


@router.get("/healthz", summary="Liveness probe (no authentication)", dependencies=[public()])
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})
