"""What every route needs: the services, the calling principal, the repository it names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from lamina_server.errors import unauthorized
from lamina_server.identity import Identity, Principal, Repositories, RepositoryRecord

if TYPE_CHECKING:
    from lamina_server.api.signing import UrlSigner
    from lamina_server.api.staging import Staging
    from lamina_server.config import ServerConfig
    from lamina_server.storage.blobs import BlobStore
    from lamina_server.storage.db import Database
    from lamina_server.versioning import VersionStore

__all__ = [
    "RepositoryRecord",
    "Services",
    "current_principal",
    "get_services",
    "resolve_repository",
]


@dataclass
class Services:
    config: ServerConfig
    db: Database
    versions: VersionStore
    blobs: BlobStore
    identity: Identity
    signer: UrlSigner
    repositories: Repositories
    staging: Staging


async def get_services(request: Request) -> Services:
    """The app's services. A coroutine, so that as a FastAPI dependency it runs on the event
    loop: FastAPI runs plain-function dependencies in a worker thread, a hop per request."""
    services: Services = request.app.state.services
    return services


async def current_principal(request: Request) -> Principal:
    """The principal behind ``Authorization: Bearer <key>``; 401 envelope otherwise."""
    state = request.scope.setdefault("state", {})  # request.state's own dict
    cached: Principal | None = state.get("principal")
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing Authorization header (expected 'Bearer <api key>')")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthorized("malformed Authorization header (expected 'Bearer <api key>')")
    services = await get_services(request)
    principal = await services.identity.authenticate(key)
    if principal is None:
        raise unauthorized("invalid API key")
    state["principal"] = principal
    return principal


async def resolve_repository(
    services: Services, principal: Principal, org: str, repo: str
) -> RepositoryRecord:
    """The live repository ``org/repo`` visible to ``principal``; 404 envelope otherwise."""
    organization = await services.identity.organization_for(principal, org)
    return await services.repositories.get(organization, repo)
