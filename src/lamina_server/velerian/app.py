"""The application of the Velerian facade, mounted at ``/api/v2`` by the server's app.

An application of its own, so that its errors take FastAPI's ``{"detail": ...}`` shape
(:mod:`.errors`) and its OpenAPI document (``/api/v2/openapi.json``,
``docs/api/velerian-openapi.json``) is FastAPI's, 422s included, while ``/api/v1`` keeps the
contract's envelope. It shares the server app's state (its services), and its routes are
:class:`~lamina_server.api.access.LaminaRoute`\\ s, served through the one prelude.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import State

from lamina_server import __version__
from lamina_server.api.openapi import operation_id
from lamina_server.velerian import errors, routes_governance, routes_keys, routes_runs

PREFIX = "/api/v2"


def create_velerian_app(state: State) -> FastAPI:
    """The facade, serving the services found in ``state`` (the server app's)."""
    app = FastAPI(
        title="Lamina — Velerian API",
        version=__version__,
        description="The Velerian API (/api/v2) for the official velerian-sdk, mapped onto "
        "Lamina's governance and sandboxes (docs/governance.md).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
        servers=[{"url": PREFIX}],
    )
    app.state = state
    errors.install(app)
    for module in (routes_keys, routes_runs, routes_governance):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                servers=app.servers,
            )
            # Every route takes a key: a vk_live_ key, or (for /api-keys) a Lamina user key.
            schema.setdefault("components", {})["securitySchemes"] = {
                "BearerAuth": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"BearerAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
