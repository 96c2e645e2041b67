"""Connectors: an organization's external sources (create, list, get, delete, disable, test)
and their attachment to repositories. A connector's configuration (credentials included) is
stored sealed and never returned (:mod:`lamina_server.imports.connectors`).

``PATCH {O}/connectors/{id}`` with ``{"disabled": true|false}`` is a Lamina extension: the
contract has 423 for a disabled connector but no route that disables one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api.access import AccessDep, LaminaRoute, organization_action, repository_action
from lamina_server.api.params import ORG, REPO, ServicesDep
from lamina_server.api.schemas import error_responses, rfc3339
from lamina_server.authz import Action
from lamina_server.imports.connectors import ConnectorRecord, check_connection, parse_settings

router = APIRouter(tags=["Connectors"], route_class=LaminaRoute)

CONNECTORS = f"{ORG}/connectors"
CONNECTOR = f"{CONNECTORS}/{{connector_id}}"
REPO_CONNECTORS = f"{REPO}/connectors"
REPO_CONNECTOR = f"{REPO_CONNECTORS}/{{connector_id}}"
MAX_CONNECTOR_BODY = 64 * 1024
ConnectorType = Literal["s3", "gcs", "git", "google_drive"]


class CreateConnectorRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=256)
    type: ConnectorType
    source_uri: str | None = Field(
        default=None,
        max_length=2048,
        description="s3://bucket[/prefix]; may be left out when config names bucket (and prefix)",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="s3: endpoint, region, access_key_id, secret_access_key, session_token, "
        "etags (md5 or opaque) (and bucket, prefix without source_uri). Stored encrypted; "
        "never returned.",
    )


class TestConnectorConfigRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: ConnectorType
    source_uri: str | None = Field(default=None, max_length=2048)
    config: dict[str, Any] = Field(default_factory=dict)


class UpdateConnectorRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    disabled: bool = Field(description="true: every use of the connector answers 423")


class AttachConnectorRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    connector_id: str = Field(min_length=1, max_length=64)


class ConnectorInfo(BaseModel):
    id: str
    name: str
    type: str
    source_uri: str
    display_source: str
    disabled: bool
    public_key: str | None
    created_at: datetime


class ConnectorList(BaseModel):
    results: list[ConnectorInfo]


class TestConnectionResult(BaseModel):
    status: Literal["ok"]


def connector_json(record: ConnectorRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "type": record.type,
        "source_uri": record.source_uri,
        "display_source": record.source_uri,
        "disabled": record.disabled,
        "public_key": None,
        "created_at": rfc3339(record.created_at),
    }


_MANAGE = organization_action(Action.MANAGE_CONNECTORS, body_limit=MAX_CONNECTOR_BODY)


@router.post(
    CONNECTORS,
    status_code=201,
    summary="Create a connector (type s3; the other types are refused with a 400)",
    responses={201: {"model": ConnectorInfo}, **error_responses(400, 404, 413)},
    dependencies=[_MANAGE],
)
async def create_connector(
    body: CreateConnectorRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.connectors.create(
        access.org.id,
        name=body.name,
        type_=body.type,
        source_uri=body.source_uri,
        config=body.config,
        author=access.caller,
    )
    return JSONResponse(connector_json(record), status_code=201)


@router.get(
    CONNECTORS,
    summary="List the organization's connectors (not paginated)",
    responses={200: {"model": ConnectorList}, **error_responses(404)},
    dependencies=[organization_action(Action.MANAGE_CONNECTORS)],
)
async def list_connectors(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.connectors.all(access.org.id)
    return JSONResponse({"results": [connector_json(record) for record in records]})


@router.post(
    f"{CONNECTORS}:test",
    summary="Test a connector's configuration before creating it (a real connection check)",
    responses={200: {"model": TestConnectionResult}, **error_responses(400, 404, 413, 502)},
    dependencies=[_MANAGE],
)
async def test_connector_config(
    body: TestConnectorConfigRequest, access: AccessDep
) -> JSONResponse:
    await check_connection(parse_settings(body.type, body.source_uri, body.config))
    return JSONResponse({"status": "ok"})


@router.get(
    CONNECTOR,
    summary="Get a connector (410 once deleted)",
    responses={200: {"model": ConnectorInfo}, **error_responses(404, 410)},
    dependencies=[organization_action(Action.MANAGE_CONNECTORS)],
)
async def get_connector(
    connector_id: str, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    return JSONResponse(connector_json(await services.connectors.get(access.org.id, connector_id)))


@router.patch(
    CONNECTOR,
    summary="Disable or enable a connector (Lamina extension)",
    responses={200: {"model": ConnectorInfo}, **error_responses(400, 404, 410)},
    dependencies=[organization_action(Action.MANAGE_CONNECTORS)],
)
async def update_connector(
    connector_id: str, body: UpdateConnectorRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.connectors.set_disabled(access.org.id, connector_id, body.disabled)
    return JSONResponse(connector_json(record))


@router.delete(
    CONNECTOR,
    status_code=204,
    summary="Delete a connector (soft delete: later use answers 410)",
    responses=error_responses(404, 410),
    dependencies=[organization_action(Action.MANAGE_CONNECTORS)],
)
async def delete_connector(connector_id: str, services: ServicesDep, access: AccessDep) -> Response:
    await services.connectors.delete(access.org.id, connector_id)
    return Response(status_code=204)


@router.post(
    f"{CONNECTOR}/test",
    summary="Test an existing connector's connection (a real connection check)",
    responses={200: {"model": TestConnectionResult}, **error_responses(404, 410, 423, 502)},
    dependencies=[organization_action(Action.MANAGE_CONNECTORS)],
)
async def test_connector(
    connector_id: str, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    record = await services.connectors.usable(access.org.id, connector_id)
    await check_connection(await services.connectors.settings(record))
    return JSONResponse({"status": "ok"})


# --- a repository's connectors ----------------------------------------------------------------


@router.post(
    REPO_CONNECTORS,
    status_code=201,
    summary="Attach a connector to the repository",
    responses={201: {"model": ConnectorInfo}, **error_responses(400, 404, 410, 423)},
    dependencies=[repository_action(Action.MANAGE_CONNECTORS)],
)
async def attach_connector(
    body: AttachConnectorRequest, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    await services.connectors.attach(access.org.id, access.repo.id, body.connector_id)
    record = await services.connectors.get(access.org.id, body.connector_id)
    return JSONResponse(connector_json(record), status_code=201)


@router.get(
    REPO_CONNECTORS,
    summary="List the connectors attached to the repository",
    responses={200: {"model": ConnectorList}, **error_responses(404)},
    dependencies=[repository_action(Action.IMPORT_DATA)],
)
async def list_repository_connectors(services: ServicesDep, access: AccessDep) -> JSONResponse:
    records = await services.connectors.attached(access.repo.id)
    return JSONResponse({"results": [connector_json(record) for record in records]})


@router.delete(
    REPO_CONNECTOR,
    status_code=204,
    summary="Detach a connector from the repository",
    responses=error_responses(404),
    dependencies=[repository_action(Action.MANAGE_CONNECTORS)],
)
async def detach_connector(connector_id: str, services: ServicesDep, access: AccessDep) -> Response:
    await services.connectors.detach(access.repo.id, access.repo.name, connector_id)
    return Response(status_code=204)
