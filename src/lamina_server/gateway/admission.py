"""Who is calling, and may it: a SigV4-signed request through the API's own seam.

Each operation has a :class:`GatewayDeclaration` — its actions, as every API route declares
them — and is served through :func:`lamina_server.api.access.prelude` (request id, query check,
audit), whose authentication and authorization step is :meth:`GatewayDeclaration.admit`:

1. the signature is parsed and the credential it names resolved (:mod:`.credentials`; a
   revoked or unknown one is ``InvalidAccessKeyId``), then verified (:mod:`.signing`);
2. the bucket ``<org>.<repo>`` resolves to its organization, and each declared action is asked
   of the authorizer by :func:`~lamina_server.api.access.check_action`, on the object path when
   the operation acts on one — the same check, audit of denials and concealment (a caller who
   is not a member is told there is no such bucket) as every API route;
3. a mutating request holds its audit entry, written by its first write transaction.

Further checks an operation learns of only from its body or headers (the keys of a
DeleteObjects, the source of a CopyObject) go through :func:`check_action` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote

from starlette.requests import HTTPConnection

from lamina_server.api.access import MUTATING, Access, Check, Declaration, Scope, check_action
from lamina_server.api.deps import Services
from lamina_server.authz import Action, Resource
from lamina_server.gateway import signing
from lamina_server.gateway.s3_errors import S3Error, no_such_bucket
from lamina_server.governance.audit import AuditEvent
from lamina_server.identity import Authenticated
from lamina_server.storage import journal

_TARGET = "s3_target"
_SIGNED = "s3_signed"
SESSION_PREFIX = "session-"
HEAD = "head"


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """A key ``<ref>/<path>``: the view it names (HEAD, a commit, a session) and the path."""

    ref: str
    path: str

    @property
    def session_id(self) -> str | None:
        return (
            self.ref.removeprefix(SESSION_PREFIX) if self.ref.startswith(SESSION_PREFIX) else None
        )

    @property
    def commit_id(self) -> str | None:
        if self.ref == HEAD or self.session_id is not None:
            return None
        return self.ref

    @property
    def view(self) -> tuple[str | None, str | None]:
        """(session id, commit id) as the version store reads them; (None, None) is HEAD."""
        return self.session_id, self.commit_id


def parse_key(key: str) -> ObjectKey:
    ref, _, path = key.partition("/")
    return ObjectKey(ref, path)


@dataclass(frozen=True, slots=True)
class Target:
    """What a request's path names: the bucket (``""``: the service) and the key in it."""

    bucket: str
    key: str

    @property
    def organization(self) -> str:
        return self._split()[0]

    @property
    def repository(self) -> str:
        return self._split()[1]

    def _split(self) -> tuple[str, str]:
        org, dot, repo = self.bucket.partition(".")
        if not dot or not org or not repo:
            raise no_such_bucket(self.bucket)
        return org, repo

    @property
    def object_key(self) -> ObjectKey:
        return parse_key(self.key)


def target_of(request: HTTPConnection) -> Target:
    target: Target = request.scope["state"][_TARGET]
    return target


def set_target(request: HTTPConnection, target: Target) -> None:
    request.scope.setdefault("state", {})[_TARGET] = target


@dataclass(frozen=True, slots=True)
class Signature:
    """The verified signature of a request, and the day's key its body's chunks are
    checked with."""

    signed: signing.Signed
    key: bytes


def signature_of(request: HTTPConnection) -> Signature:
    signature: Signature = request.scope["state"][_SIGNED]
    return signature


def request_headers(request: HTTPConnection) -> dict[str, str]:
    """The request's headers by lower-case name, repeated ones joined with commas."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def query_pairs(request: HTTPConnection) -> list[tuple[str, str]]:
    pairs = []
    for item in request.scope["query_string"].decode("ascii").split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


async def authenticate(request: HTTPConnection, services: Services) -> Authenticated:
    """The principal of the credential that signed the request (see the module docstring)."""
    headers = request_headers(request)
    signed = signing.parse(headers, query_pairs(request), datetime.now(timezone.utc))
    resolved = await services.s3_credentials.resolve(signed.access_key_id)
    if resolved is None:
        raise S3Error(
            403,
            "InvalidAccessKeyId",
            "the access key id you provided does not exist in our records (or was revoked)",
        )
    key = signing.verify(
        signed,
        resolved.secret_access_key,
        method=request.scope["method"],
        raw_path=request.scope.get("raw_path") or request.scope["path"].encode(),
        raw_query=request.scope["query_string"],
        headers=headers,
    )
    request.scope["state"][_SIGNED] = Signature(signed, key)
    return resolved.authenticated


class GatewayDeclaration(Declaration):
    """An S3 operation's actions; ``on_object``: they act on the key's object path."""

    def __init__(
        self, *actions: Action, scope: Scope, on_object: bool = False, deferred: bool = False
    ) -> None:
        super().__init__(tuple(Check(action) for action in actions), scope)
        self.on_object = on_object
        self.deferred = deferred  # the handler checks the actions on what its body names

    async def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        actions = ", ".join(str(action) for action in self.actions)
        return f"GatewayDeclaration({actions or '-'} on {self.scope.value})"

    async def admit(self, request: HTTPConnection, services: Services) -> Access:
        authenticated = await authenticate(request, services)
        principal, epoch = authenticated.principal, authenticated.epoch
        if self.scope is Scope.ACCOUNT:
            for action in self.actions:
                await check_action(services, principal, action, Resource(), epoch)
            return Access(principal, epoch=epoch)
        target = target_of(request)
        org = await services.identity.organization(target.organization)
        resource = Resource(org, target.repository)
        path = target.object_key.path if self.on_object else ""
        checked = resource.at(path) if path else resource
        for action in () if self.deferred else self.actions:
            await check_action(services, principal, action, checked, epoch)
        if request.scope.get("method") in MUTATING and self.actions:
            journal.hold(
                AuditEvent.of(
                    principal,
                    organization_id=org.id,
                    action=str(self.actions[-1]),
                    resource=str(checked),
                    resource_kind="object" if path else "repository",
                    resource_id=path or target.repository,
                )
            )
        if self.deferred:  # the repository is resolved once an action was authorized
            return Access(principal, org, None, resource=resource, epoch=epoch)
        record = await services.repositories.get(org, target.repository)
        return Access(principal, org, record, resource=resource, epoch=epoch)


def on_service(*actions: Action) -> GatewayDeclaration:
    return GatewayDeclaration(*actions, scope=Scope.ACCOUNT)


def on_bucket(*actions: Action) -> GatewayDeclaration:
    return GatewayDeclaration(*actions, scope=Scope.REPOSITORY)


def on_object(*actions: Action) -> GatewayDeclaration:
    return GatewayDeclaration(*actions, scope=Scope.REPOSITORY, on_object=True)


def on_body_keys(*actions: Action) -> GatewayDeclaration:
    """Actions on each key the body names, checked by the handler (DeleteObjects)."""
    return GatewayDeclaration(*actions, scope=Scope.REPOSITORY, deferred=True)


async def check_also(
    services: Services, access: Access, action: Action, resource: Resource
) -> None:
    """A further action a request needs, on what its body or headers name: asked of the same
    authorizer, audited and refused as the prelude does."""
    await check_action(services, access.caller, action, resource, access.epoch)
