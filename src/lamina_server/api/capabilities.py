"""``GET /api/v1/capabilities``: the Lamina extensions this server offers, and their limits.

A client asks once and uses an extension only when it is listed; a server that speaks only
the contract has no such route (404), which a client reads as "none". Public: it says what
the server can do, nothing about anyone's data.

    {"extensions": {"one_request_put": {"max_object_bytes": 1048576},
                    "batch_upload": {"max_object_bytes": 1048576, "max_objects": 10000,
                                     "format": "application/x-tar"}}}
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lamina_server.api import direct_uploads
from lamina_server.api.access import LaminaRoute, public
from lamina_server.api.deps import get_services

router = APIRouter(tags=["Capabilities"], route_class=LaminaRoute)


class OneRequestPut(BaseModel):
    max_object_bytes: int = Field(description="The largest object POST .../object/upload takes")


class BatchUpload(BaseModel):
    max_object_bytes: int = Field(description="The largest object of a batch")
    max_objects: int = Field(description="The most objects one POST .../objects/upload carries")
    format: str = Field(description="The body's media type: a POSIX tar archive")


class Extensions(BaseModel):
    one_request_put: OneRequestPut | None = None
    batch_upload: BatchUpload | None = None


class Capabilities(BaseModel):
    extensions: Extensions


@router.get(
    "/capabilities",
    summary="Lamina extension: the extensions this server offers (no authentication)",
    response_model=Capabilities,
    dependencies=[public()],
)
async def capabilities(request: Request) -> JSONResponse:
    extensions: dict[str, dict[str, object]] = {}
    if direct_uploads.enabled(await get_services(request)):
        limit = direct_uploads.MAX_OBJECT_BYTES
        extensions["one_request_put"] = {"max_object_bytes": limit}
        extensions["batch_upload"] = {
            "max_object_bytes": limit,
            "max_objects": direct_uploads.MAX_BATCH_OBJECTS,
            "format": "application/x-tar",
        }
    return JSONResponse({"extensions": extensions})
