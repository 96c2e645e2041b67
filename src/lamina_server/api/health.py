"""``GET /healthz``: liveness, no authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

router = APIRouter(tags=["Health"])


@router.get("/healthz", summary="Liveness probe (no authentication)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})
