"""What every route needs: the services, and readings of the bare request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from lamina_server.api.forwarding import Forwarder
    from lamina_server.api.signing import UrlSigner
    from lamina_server.authz import Authorizer
    from lamina_server.authz.generate import PolicyGenerator
    from lamina_server.authz.store import AccessStore
    from lamina_server.config import ServerConfig
    from lamina_server.gateway.credentials import S3Credentials
    from lamina_server.governance.approvals import Approvals
    from lamina_server.governance.audit import AuditLog
    from lamina_server.governance.evidence import EvidenceService
    from lamina_server.governance.usage import Usage
    from lamina_server.identity import Identity
    from lamina_server.identity.web_sessions import WebSessions
    from lamina_server.imports import Connectors, Imports
    from lamina_server.repositories import Repositories
    from lamina_server.sandboxes.dispatch import TriggerDispatcher
    from lamina_server.sandboxes.service import Sandboxes
    from lamina_server.sandboxes.triggers import SandboxTriggers
    from lamina_server.secrets import Secrets
    from lamina_server.storage.blobs import BlobStore, Presigner
    from lamina_server.storage.db import Database
    from lamina_server.velerian import Velerian
    from lamina_server.versioning import Staging, VersionStore

__all__ = ["Services", "get_services", "query", "request_base"]


@dataclass
class Services:
    config: ServerConfig
    db: Database
    versions: VersionStore
    blobs: BlobStore
    identity: Identity
    web_sessions: WebSessions
    signer: UrlSigner
    repositories: Repositories
    staging: Staging
    authorizer: Authorizer
    access: AccessStore
    policy_generator: PolicyGenerator
    audit: AuditLog
    approvals: Approvals
    secrets: Secrets
    sandboxes: Sandboxes
    triggers: SandboxTriggers
    trigger_dispatcher: TriggerDispatcher
    evidence: EvidenceService
    usage: Usage
    velerian: Velerian
    forwarder: Forwarder
    s3_credentials: S3Credentials
    connectors: Connectors
    imports: Imports
    # Set when clients reach the blob store directly (S3): its URLs replace the data plane's.
    presigner: Presigner | None = None


async def get_services(request: HTTPConnection) -> Services:
    """The app's services. A coroutine, so that as a FastAPI dependency it runs on the event
    loop: FastAPI runs plain-function dependencies in a worker thread, a hop per request."""
    services: Services = request.app.state.services
    return services


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
