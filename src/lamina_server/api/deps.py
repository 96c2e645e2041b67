"""What every route needs: the services, the calling principal, the repository it names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request

from lamina_server.errors import unauthorized
from lamina_server.identity import Identity, Principal, Repositories, RepositoryRecord

if TYPE_CHECKING:
    from lamina_server.api.signing import UrlSigner
    from lamina_server.config import ServerConfig
    from lamina_server.storage.blobs import BlobStore
    from lamina_server.storage.db import Database
    from lamina_server.versioning import Staging, VersionStore

__all__ = [
    "RepositoryRecord",
    "Services",
    "current_principal",
    "get_services",
    "query",
    "request_base",
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


def query(request: Request) -> dict[str, str]:
    """The query parameters of a bare request, as Starlette's ``query_params`` reads them (the
    last value of a repeated name), without its multi-dict: the upload routes read two."""
    text = request.scope["query_string"].decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(part.partition("=")[::2] for part in text.split("&") if part)


_BASES: dict[tuple[Any, ...], str] = {}
_MAX_BASES = 64


def request_base(request: Request) -> str:
    """Scheme, host and port the request was sent to: Starlette's ``base_url`` (which checks the
    Host header) without the trailing slash, remembered for the few hosts a server is reached
    at."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    root = scope.get("app_root_path", scope.get("root_path", ""))
    key = (scope["scheme"], host, scope.get("server"), root)
    base = _BASES.get(key)
    if base is None:
        base = str(request.base_url).rstrip("/")
        if len(_BASES) < _MAX_BASES:
            _BASES[key] = base
    return base
