"""The server's OpenAPI document (``docs/api/openapi.json``), built from the routes.

FastAPI's document, corrected where it would not tell the truth: validation failures are 400
envelopes (not 422s), only routes that take an API key declare the bearer scheme, operation
ids are unique, methods come in one order, and paths are relative to the ``/api/v1`` server.

It also lists, on every operation, what the prelude of its declaration can answer before the
handler runs (:func:`prelude_statuses`): 400 for a query string that is not UTF-8, 401 and
403 where an API key is checked and an action authorized, 404 for an unknown organization or
repository, 413 for a request body over the limit. Every error response documents the
``X-Error-Code`` and ``X-Error-Message`` headers, and a ``HEAD`` success has no content.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from lamina_server.api.access import Declaration, Scope, declaration_of, walk_routes
from lamina_server.api.schemas import ErrorBody, error_responses
from lamina_server.config import API_PREFIX

_METHOD_ORDER = {
    method: index for index, method in enumerate(("get", "head", "post", "put", "patch", "delete"))
}
_UNAUTHENTICATED = (Scope.PUBLIC, Scope.SIGNED)
_ERROR_HEADER_COMPONENTS = {
    "X-Error-Code": {
        "description": "The error's `code`, also for responses without a body (HEAD)",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Error-Message": {
        "description": "The error's `message`, percent-encoded UTF-8",
        "required": True,
        "schema": {"type": "string"},
    },
}
_ERROR_HEADERS = {
    name: {"$ref": f"#/components/headers/{name}"} for name in _ERROR_HEADER_COMPONENTS
}


def operation_id(route: APIRoute) -> str:
    return route.name


def prelude_statuses(declaration: Declaration, *, has_body: bool) -> set[int]:
    """The error statuses a route's prelude (and its bounded body read) can answer."""
    statuses = {400}  # a query string that is not percent-encoded UTF-8
    if declaration.scope is Scope.SIGNED:
        statuses.add(403)  # a forged or expired token, or one of another kind
    elif declaration.scope is not Scope.PUBLIC:
        statuses |= {401, 403}
        if declaration.scope is not Scope.ACCOUNT:
            statuses.add(404)
    if has_body:
        statuses.add(413)
    return statuses


def _declarations(app: FastAPI) -> dict[str, Declaration]:
    """Each operation id's declaration."""
    found: dict[str, Declaration] = {}
    for route in walk_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        declaration = declaration_of(route)
        if declaration is not None:
            found[operation_id(route)] = declaration
    return found


def _document_prelude(operation: dict[str, Any], declaration: Declaration) -> None:
    responses = operation.setdefault("responses", {})
    statuses = prelude_statuses(declaration, has_body="requestBody" in operation)
    for status, response in error_responses(*statuses, authenticated=False).items():
        if str(status) not in responses:
            model = response.pop("model")
            schema = {"$ref": f"#/components/schemas/{model.__name__}"}
            responses[str(status)] = {
                **response,
                "content": {"application/json": {"schema": schema}},
            }
    # Status order, as FastAPI writes the ones it knows.
    ordered = sorted(responses.items())
    responses.clear()
    responses.update(ordered)


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
    components["headers"] = _ERROR_HEADER_COMPONENTS
    bad_request = {
        "description": "Bad request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    declarations = _declarations(app)
    seen_ids: set[str] = set()
    for operations in schema.get("paths", {}).values():
        # A route serving several methods lists them in set order; fix one order.
        ordered = sorted(operations.items(), key=lambda item: _METHOD_ORDER.get(item[0], 99))
        operations.clear()
        operations.update(ordered)
        for method, operation in operations.items():
            declaration = declarations.get(operation.get("operationId", ""))
            if declaration is not None and declaration.scope not in _UNAUTHENTICATED:
                operation["security"] = [{"BearerAuth": []}]
            if operation.get("operationId") in seen_ids:
                operation["operationId"] = f"{operation['operationId']}_{method}"
            seen_ids.add(operation.get("operationId", ""))
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", {**bad_request})
            if declaration is not None:
                _document_prelude(operation, declaration)
            for status, response in responses.items():
                if status[0] in "45":
                    response.setdefault("headers", {}).update(_ERROR_HEADERS)
                elif method == "head":
                    response.pop("content", None)  # a HEAD answer has headers only
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
