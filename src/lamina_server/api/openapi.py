"""The server's OpenAPI document (``docs/api/openapi.json``), built from the routes.

FastAPI's document, corrected where it would not tell the truth: validation failures are 400
envelopes (not 422s), only routes that take an API key declare the bearer scheme, operation
ids are unique, methods come in one order, and paths are relative to the ``/api/v1`` server.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from lamina_server.api.access import Scope, declaration_of, walk_routes
from lamina_server.api.schemas import ErrorBody

API_PREFIX = "/api/v1"

_METHOD_ORDER = {
    method: index for index, method in enumerate(("get", "head", "post", "put", "patch", "delete"))
}
_UNAUTHENTICATED = (Scope.PUBLIC, Scope.SIGNED)


def operation_id(route: APIRoute) -> str:
    return route.name


def _keyed_operations(app: FastAPI) -> set[str]:
    """The operation ids of the routes that take an API key."""
    keyed: set[str] = set()
    for route in walk_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        declaration = declaration_of(route)
        if declaration is not None and declaration.scope not in _UNAUTHENTICATED:
            keyed.add(operation_id(route))
    return keyed


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    with warnings.catch_warnings():
        # A route serving GET and HEAD yields one id for both; they are made unique below.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=[{"url": API_PREFIX}],
        )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    bad_request = {
        "description": "Bad request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    keyed = _keyed_operations(app)
    seen_ids: set[str] = set()
    for operations in schema.get("paths", {}).values():
        # A route serving several methods lists them in set order; fix one order.
        ordered = sorted(operations.items(), key=lambda item: _METHOD_ORDER.get(item[0], 99))
        operations.clear()
        operations.update(ordered)
        for method, operation in operations.items():
            if operation.get("operationId") in keyed:
                operation["security"] = [{"BearerAuth": []}]
            if operation.get("operationId") in seen_ids:
                operation["operationId"] = f"{operation['operationId']}_{method}"
            seen_ids.add(operation.get("operationId", ""))
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", bad_request)
    # Paths are documented relative to the server URL (the /api/v1 prefix), as in the contract;
    # the few outside it (/healthz) say so with their own server entry.
    paths: dict[str, Any] = {}
    for path, item in schema.get("paths", {}).items():
        if path.startswith(f"{API_PREFIX}/"):
            paths[path.removeprefix(API_PREFIX)] = item
        else:
            paths[path] = {"servers": [{"url": "/"}], **item}
    schema["paths"] = paths
    app.openapi_schema = schema
    return schema
