"""The ASGI application: the services, and every router behind one seam.

Every route declares its action and is served through the one prelude of
:mod:`lamina_server.api.access`; errors become the contract's envelope
(:mod:`lamina_server.api.errors`); every request and websocket carries an id
(:mod:`lamina_server.api.request_ids`); the hot upload and download routes are served by the
fast lane (:mod:`lamina_server.api.lane`) through the same prelude.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lamina_server import __version__
from lamina_server.api import (
    approval_page,
    approvals,
    audit,
    auth,
    capabilities,
    commits,
    connectors,
    data,
    direct_uploads,
    evidence,
    groups,
    health,
    imports,
    invitations,
    login,
    objects,
    organizations,
    policies,
    principals,
    repositories,
    s3_credentials,
    sandbox_streams,
    sandbox_triggers,
    sandboxes,
    secrets,
    sessions,
    uploads,
    usage,
)
from lamina_server.api.access import refuse_undeclared_sockets
from lamina_server.api.deps import Services
from lamina_server.api.errors import (
    HANDLED_ERRORS,
    handle_domain_error,
    handle_http_error,
    handle_validation_error,
)
from lamina_server.api.forwarding import Forwarder, forward_to_owner
from lamina_server.api.lane import LaminaApp, lane_routes
from lamina_server.api.openapi import build_openapi, operation_id
from lamina_server.api.request_ids import RequestIdMiddleware
from lamina_server.api.signing import UrlSigner
from lamina_server.authz import Authorizer
from lamina_server.authz.builtins import BUILTIN_TEXTS
from lamina_server.authz.generate import policy_generator
from lamina_server.authz.store import AccessStore
from lamina_server.bootstrap import bootstrap, load_or_create_secret
from lamina_server.config import API_PREFIX, ServerConfig
from lamina_server.garbage import Collector, run_periodically
from lamina_server.gateway.app import Gateway
from lamina_server.gateway.credentials import S3Credentials
from lamina_server.governance.approvals import Approvals
from lamina_server.governance.audit import AuditLog
from lamina_server.governance.evidence import EvidenceService
from lamina_server.governance.signing_key import load_signing_key
from lamina_server.governance.usage import Usage
from lamina_server.identity import Identity
from lamina_server.identity.web_sessions import WebSessions
from lamina_server.imports import Connectors, Imports
from lamina_server.repositories import Repositories
from lamina_server.sandboxes.checkouts import Checkouts
from lamina_server.sandboxes.dispatch import Launcher, TriggerDispatcher, TriggerOutbox
from lamina_server.sandboxes.environment import StoredSecrets
from lamina_server.sandboxes.errors import SandboxElsewhere
from lamina_server.sandboxes.gate import PolicyGate
from lamina_server.sandboxes.images import Images, default_images_dir
from lamina_server.sandboxes.runners.base import Limits
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner
from lamina_server.sandboxes.service import Sandboxes
from lamina_server.sandboxes.triggers import SandboxTriggers
from lamina_server.secrets import Sealer, Secrets, load_key
from lamina_server.storage.blobs.backend import BlobBackend, open_blob_store
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.replicas import Replicas
from lamina_server.storage.schema import ensure_schema
from lamina_server.velerian import Velerian
from lamina_server.velerian.abps import Abps
from lamina_server.velerian.app import PREFIX as VELERIAN_PREFIX
from lamina_server.velerian.app import create_velerian_app
from lamina_server.velerian.keys import VelerianKeys
from lamina_server.velerian.runs import Runs
from lamina_server.versioning import CachingVersionStore, Staging

__all__ = ["API_PREFIX", "create_app"]


# --- services and the app factory -------------------------------------------------------------


def _tune_gc() -> None:
    """Once the server is up: what the process built so far (modules, app, services) lives as
    long as it does, so the cyclic garbage collector stops walking it on each full pass; and it
    runs less often, since a request allocates a few hundred objects that reference counting
    frees. Worth about 5-10% of the upload throughput (scripts/bench/put_throughput.py)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(config: ServerConfig, *, trigger_launcher: Launcher | None = None) -> LaminaApp:
    """The app. The sandboxes of sandbox triggers are started by the app's own sandbox
    service, or by ``trigger_launcher`` when one is given (tests that watch what fires)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(config.database_url or sqlite_url(config.data_dir))
        dispatcher: TriggerDispatcher | None = None
        backend: BlobBackend | None = None
        forwarder: Forwarder | None = None
        try:
            await ensure_schema(db)
            identity = Identity(db)
            access = AccessStore(db, BUILTIN_TEXTS)
            await access.initialize()
            await bootstrap(config, identity)
            versions = CachingVersionStore(db, recorder=TriggerOutbox())
            backend = open_blob_store(config.blob_store, config.data_dir / "blobs", os.environ)
            blobs = backend.store
            sealer = Sealer(load_key(config.data_dir, os.environ))
            secret_store = Secrets(db, sealer)
            connector_store = Connectors(db, sealer)
            authorizer = Authorizer(identity, access)
            audit_log = AuditLog(db, enabled=config.audit_log)
            repository_directory = Repositories(db)
            approvals = Approvals(db, versions)
            replicas = Replicas(db, url=config.replica_url)
            signer = UrlSigner(load_or_create_secret(config.data_dir / "signing.key"))
            forwarder = Forwarder(replicas, signer)
            sandbox_service = Sandboxes(
                db=db,
                versions=versions,
                blobs=blobs,
                images=Images(db, default_images_dir(config.data_dir)),
                checkouts=Checkouts(config.data_dir / "sandboxes" / "checkouts", versions, blobs),
                runner=BubblewrapRunner(cache_dir=config.data_dir / "sandboxes" / "agent"),
                folder=config.data_dir / "sandboxes" / "runs",
                limits=Limits(config.sandbox_memory_limit, config.sandbox_max_processes),
                default_image=config.default_sandbox_image,
                secrets=StoredSecrets(secret_store),
                gate=PolicyGate(db, authorizer),
                approvals=approvals,
                repositories=repository_directory,
                base_url=config.base_url,
                replica_id=replicas.id,
            )
            approvals.on_decided.append(sandbox_service.approval_decided)
            dispatcher = TriggerDispatcher(
                db, versions, launcher=trigger_launcher or sandbox_service
            )
            versions.on_landed = dispatcher.wake
            evidence_service = EvidenceService(
                db=db,
                versions=versions,
                blobs=blobs,
                sandboxes=sandbox_service,
                key=load_signing_key(config.data_dir),
                audit=audit_log,
                approvals=approvals,
            )
            approvals.on_decided.append(evidence_service.after_approval)
            sandbox_service.on_ended = evidence_service.after_sandbox
            import_service = Imports(
                db=db,
                versions=versions,
                blobs=blobs,
                connectors=connector_store,
                authorizer=authorizer,
                identity=identity,
                replica_id=replicas.id,
            )

            async def take_over(alive: set[str]) -> None:
                await sandbox_service.take_over(alive)
                await import_service.take_over(alive)

            abps = Abps(db)
            runs = Runs(db, abps, sandbox_service)
            app.state.services = Services(
                config=config,
                db=db,
                versions=versions,
                blobs=blobs,
                identity=identity,
                web_sessions=WebSessions(db, identity.authenticate_digest),
                signer=signer,
                repositories=repository_directory,
                staging=Staging(versions, blobs),
                authorizer=authorizer,
                access=access,
                policy_generator=policy_generator(config.policy_generator),
                audit=audit_log,
                approvals=approvals,
                secrets=secret_store,
                sandboxes=sandbox_service,
                triggers=SandboxTriggers(db),
                trigger_dispatcher=dispatcher,
                evidence=evidence_service,
                usage=Usage(db, runs),
                velerian=Velerian(VelerianKeys(db), abps, runs),
                forwarder=forwarder,
                s3_credentials=S3Credentials(db, sealer),
                connectors=connector_store,
                imports=import_service,
                presigner=backend.presigner,
            )
            async with anyio.create_task_group() as tasks:
                await tasks.start(sandbox_service.tasks.serve)
                await tasks.start(import_service.tasks.serve)
                await tasks.start(partial(replicas.run, take_over))
                await dispatcher.start()
                if config.gc_interval > 0:
                    tasks.start_soon(run_periodically, Collector(db, blobs), config.gc_interval)
                _tune_gc()
                yield
                tasks.cancel_scope.cancel()
        finally:
            if forwarder is not None:
                await forwarder.close()
            if dispatcher is not None:
                await dispatcher.stop()
            if backend is not None and backend.close is not None:
                await backend.close()
            await db.dispose()

    app = LaminaApp(
        title="Lamina",
        version=__version__,
        description="The Lamina reference server: the Tilde API (/api/v1) and its extensions.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        generate_unique_id_function=operation_id,
    )
    lane = lane_routes(API_PREFIX, uploads.router, uploads.FAST_LANE)
    lane += lane_routes(API_PREFIX, direct_uploads.router, direct_uploads.FAST_LANE)
    lane += lane_routes("", data.router, data.FAST_LANE)
    lane += lane_routes(API_PREFIX, sandboxes.router, sandboxes.FAST_LANE)
    app.lane = tuple(lane)
    app.gateway = Gateway(app)
    app.gateway_port = config.s3_port
    app.add_middleware(RequestIdMiddleware)
    for error in HANDLED_ERRORS:
        app.add_exception_handler(error, handle_domain_error)
    app.add_exception_handler(SandboxElsewhere, forward_to_owner)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)

    app.include_router(health.router)
    for module in (
        auth,
        audit,
        organizations,
        groups,
        policies,
        invitations,
        principals,
        repositories,
        sessions,
        approvals,
        commits,
        objects,
        uploads,
        direct_uploads,
        capabilities,
        sandboxes,
        sandbox_streams,
        sandbox_triggers,
        secrets,
        s3_credentials,
        connectors,
        imports,
        evidence,
        usage,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(data.router)
    app.include_router(login.router)
    app.include_router(approval_page.router)
    app.mount(VELERIAN_PREFIX, create_velerian_app(app.state))
    refuse_undeclared_sockets(app.routes)

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
