"""Evidence packs: list, read and export a repository's packs, export an organization's, the
download of an export (a signed, expiring URL whose token is its only credential), and the
server's public key (unauthenticated: what verifiers check signatures against)::

    GET  /api/v1/evidence/public-key
    GET  {repository}/evidence                          ?subject_id= (a sandbox's or session's)
    GET  {repository}/evidence/{pack_id}
    POST {repository}/evidence/{pack_id}/export
    POST {organization}/evidence/export                 ?since=ISO&repository=NAME
    GET  /api/v1/evidence/download?token=…              the bundle (zip)
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import IO, Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from lamina_server.api.access import (
    AccessDep,
    LaminaRoute,
    access_of,
    organization_action,
    public,
    repository_action,
    signed,
)
from lamina_server.api.data import public_base
from lamina_server.api.deps import Services, get_services
from lamina_server.api.errors import bad_request, not_found
from lamina_server.api.pagination import envelope
from lamina_server.api.params import ORG, REPO, Pages, ServicesDep
from lamina_server.api.schemas import PaginationBody, error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.governance.evidence import EvidencePack
from lamina_server.versioning.codec import from_micros, to_micros

router = APIRouter(tags=["Evidence"], route_class=LaminaRoute)

EVIDENCE_URL = "evidence-bundle"  # the token kind of a download URL
EXPORT_TTL = 3600.0
MAX_BUNDLE_PACKS = 1000
READ_CHUNK = 1024 * 1024
PackId = Annotated[str, Path(description="Evidence pack ID")]


class PublicKeyBody(BaseModel):
    algorithm: str
    key_id: str
    public_key_pem: str


class PackSummaryBody(BaseModel):
    id: str
    kind: str
    subject_id: str
    commit_id: str | None
    created_at: str
    chain_hash: str
    key_id: str


class PackBody(PackSummaryBody):
    document: dict[str, Any]
    signature: str


class PackList(BaseModel):
    results: list[PackSummaryBody]
    pagination: PaginationBody


class ExportBody(BaseModel):
    export_id: str
    artifact_kind: str
    format: str
    s3_key: str
    download_url: str
    expires_at: str
    delivery: str


def export_json(
    request: Request, services: Services, claims: dict[str, str | int], s3_key: str
) -> dict[str, Any]:
    """A signed download URL of the bundle ``claims`` name, as the export's answer."""
    export_id = str(uuid.uuid4())
    token = services.signer.sign(EVIDENCE_URL, {**claims, "e": export_id}, ttl=EXPORT_TTL)
    expires = datetime.now(timezone.utc) + timedelta(seconds=EXPORT_TTL)
    return {
        "export_id": export_id,
        "artifact_kind": "evidence_pack",
        "format": "zip",
        "s3_key": s3_key,
        "download_url": f"{public_base(request, services)}/api/v1/evidence/download?token={token}",
        "expires_at": rfc3339(expires),
        "delivery": "presigned",
    }


def _pack_json(pack: EvidencePack) -> dict[str, Any]:
    return {
        **pack.summary_json(),
        "document": json.loads(pack.document),
        "signature": pack.signature,
    }


def _since(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"since: {value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@router.get(
    "/evidence/public-key",
    summary="The server's Ed25519 public key, which evidence packs are signed with",
    response_model=PublicKeyBody,
    dependencies=[public()],
)
async def evidence_public_key(services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.evidence.key.public_json())


@router.get(
    f"{REPO}/evidence",
    summary="The repository's evidence packs, newest first",
    response_model=PackList,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.EXPORT_EVIDENCE)],
)
async def list_evidence(
    services: ServicesDep,
    access: AccessDep,
    pages: Pages,
    subject_id: Annotated[
        str | None, Query(description="Only the packs of this sandbox or session")
    ] = None,
) -> JSONResponse:
    packs, has_more = await services.evidence.page(
        access.repo.id, after=pages.after, amount=pages.amount, subject_id=subject_id or None
    )
    return JSONResponse(
        envelope(
            [pack.summary_json() for pack in packs],
            has_more=has_more,
            next_offset=packs[-1].id if has_more else None,
            amount=pages.amount,
        )
    )


async def _pack(services: Services, repository_id: str, pack_id: str) -> EvidencePack:
    pack = await services.evidence.get(repository_id, pack_id)
    if pack is None:
        raise not_found(f"evidence pack {pack_id!r} not found", "evidence_pack_not_found")
    return pack


@router.get(
    f"{REPO}/evidence/{{pack_id}}",
    summary="An evidence pack: its signed document and signature",
    response_model=PackBody,
    responses=error_responses(404),
    dependencies=[repository_action(Action.EXPORT_EVIDENCE)],
)
async def get_evidence(pack_id: PackId, services: ServicesDep, access: AccessDep) -> JSONResponse:
    return JSONResponse(_pack_json(await _pack(services, access.repo.id, pack_id)))


@router.post(
    f"{REPO}/evidence/{{pack_id}}/export",
    summary="Export a pack: an expiring signed URL of a self-contained bundle (zip)",
    response_model=ExportBody,
    responses=error_responses(404),
    dependencies=[repository_action(Action.EXPORT_EVIDENCE)],
)
async def export_evidence(
    pack_id: PackId, request: Request, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    pack = await _pack(services, access.repo.id, pack_id)
    claims: dict[str, str | int] = {"o": access.org.id, "r": access.repo.id, "p": pack.id}
    s3_key = f"evidence/{access.org.name}/{access.repo.name}/{pack.id}.zip"
    return JSONResponse(export_json(request, services, claims, s3_key))


@router.post(
    f"{ORG}/evidence/export",
    summary="Export the organization's packs created since a time (of one repository): a "
    "signed URL of one bundle",
    response_model=ExportBody,
    responses=error_responses(400, 404),
    dependencies=[organization_action(Action.EXPORT_EVIDENCE)],
)
async def export_organization_evidence(
    request: Request,
    services: ServicesDep,
    access: AccessDep,
    since: Annotated[
        str | None, Query(description="ISO 8601 date-time: packs created at or after it")
    ] = None,
    repository: Annotated[str | None, Query(description="Only this repository's packs")] = None,
) -> JSONResponse:
    start = _since(since)
    repository_id = ""
    if repository:
        repository_id = (await services.repositories.get(access.org, repository)).id
    until = datetime.now(timezone.utc)
    found = await services.evidence.select(
        access.org.id,
        repository_id=repository_id or None,
        since=start,
        until=until,
        limit=MAX_BUNDLE_PACKS + 1,
    )
    if len(found) > MAX_BUNDLE_PACKS:
        raise bad_request(
            f"since: more than {MAX_BUNDLE_PACKS} packs were created since then; "
            "export a shorter span (a later since, or one repository)"
        )
    claims: dict[str, str | int] = {
        "o": access.org.id,
        "r": repository_id,
        "s": to_micros(start) if start else 0,
        "u": to_micros(until),
    }
    scope = f"{access.org.name}/{repository}" if repository else access.org.name
    stamp = start.strftime("%Y%m%dT%H%M%SZ") if start else "all"
    s3_key = f"evidence/{scope}/since-{stamp}-until-{until.strftime('%Y%m%dT%H%M%SZ')}.zip"
    return JSONResponse(export_json(request, services, claims, s3_key))


@router.get(
    "/evidence/download",
    summary="Download an exported bundle (the URL an export answered)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(400, 403, 404, authenticated=False),
    },
    openapi_extra={
        "parameters": [
            {
                "name": "token",
                "in": "query",
                "required": True,
                "description": "The signed token (the URL's only credential)",
                "schema": {"type": "string", "minLength": 1},
            }
        ]
    },
    dependencies=[signed(Action.EXPORT_EVIDENCE, EVIDENCE_URL)],
)
async def download_evidence(request: Request) -> StreamingResponse:
    services = await get_services(request)
    claims = access_of(request).token
    evidence = services.evidence
    if claims.get("p"):
        pack = await evidence.get(claims["r"], claims["p"])
        if pack is None:
            raise not_found(
                "the exported evidence pack no longer exists", "evidence_pack_not_found"
            )
        packs = [pack]
        name = f"evidence-{pack.id}.zip"
    else:
        packs = await evidence.select(
            claims["o"],
            repository_id=claims["r"] or None,
            since=from_micros(claims["s"]) if claims["s"] else None,
            until=from_micros(claims["u"]),
            limit=MAX_BUNDLE_PACKS,
        )
        name = f"evidence-{claims['e']}.zip"
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _drain, once sent)
    try:
        await evidence.bundles.write(spool, packs, at=datetime.now(timezone.utc))
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        _drain(spool),
        media_type="application/zip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


async def _drain(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(spool.read, READ_CHUNK):
            yield chunk
    finally:
        spool.close()
