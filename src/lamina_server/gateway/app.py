"""The gateway as an ASGI application: a request's operation, its prelude, its answer.

The server's app hands it every request under ``/s3`` and, with ``--s3-port``, every request
that arrived on that port (:class:`lamina_server.api.lane.LaminaApp`). :func:`operation` picks
the S3 operation from the method, the path (service, bucket or object) and the
sub-resource in the query; the operation's declaration is served through the API's one
:func:`~lamina_server.api.access.prelude`, then its handler runs. Every error is an S3 error
document (without a body for ``HEAD``) with the request's id, as ``x-amz-request-id`` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from lamina_server.api.access import Access, prelude
from lamina_server.api.deps import Services
from lamina_server.api.errors import HANDLED_ERRORS, log_disconnect, log_unhandled
from lamina_server.api.request_ids import ensure_request_id
from lamina_server.authz import Action
from lamina_server.gateway import reads, writes
from lamina_server.gateway.admission import (
    GatewayDeclaration,
    Target,
    on_body_keys,
    on_bucket,
    on_object,
    on_service,
    set_target,
)
from lamina_server.gateway.s3_errors import S3Error, s3_error_for
from lamina_server.gateway.s3_xml import error_document

Handler = Callable[[Request, Services, Access], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    declaration: GatewayDeclaration
    handler: Handler


def _op(name: str, declaration: GatewayDeclaration, handler: Handler) -> Operation:
    return Operation(name, declaration, handler)


LIST_BUCKETS = _op("ListBuckets", on_service(Action.LIST_ORGANIZATIONS), reads.list_buckets)
HEAD_BUCKET = _op("HeadBucket", on_bucket(Action.LIST_OBJECTS), reads.head_bucket)
BUCKET_LOCATION = _op("GetBucketLocation", on_bucket(Action.GET_REPOSITORY), reads.bucket_location)
LIST_OBJECTS = _op("ListObjects", on_bucket(Action.LIST_OBJECTS), reads.list_objects)
DELETE_OBJECTS = _op("DeleteObjects", on_body_keys(Action.DELETE_OBJECT), writes.delete_objects)
GET_OBJECT = _op("GetObject", on_object(Action.GET_OBJECT), reads.get_object)
PUT_OBJECT = _op("PutObject", on_object(Action.PUT_OBJECT), writes.put_object)
COPY_OBJECT = _op("CopyObject", on_object(Action.PUT_OBJECT), writes.copy_object)
DELETE_OBJECT = _op("DeleteObject", on_object(Action.DELETE_OBJECT), writes.delete_object)
CREATE_MULTIPART = _op(
    "CreateMultipartUpload", on_object(Action.PUT_OBJECT), writes.create_multipart
)
UPLOAD_PART = _op("UploadPart", on_object(Action.PUT_OBJECT), writes.upload_part)
COMPLETE_MULTIPART = _op(
    "CompleteMultipartUpload", on_object(Action.PUT_OBJECT), writes.complete_multipart
)
ABORT_MULTIPART = _op("AbortMultipartUpload", on_object(Action.PUT_OBJECT), writes.abort_multipart)
OPERATIONS = (
    LIST_BUCKETS,
    HEAD_BUCKET,
    BUCKET_LOCATION,
    LIST_OBJECTS,
    DELETE_OBJECTS,
    GET_OBJECT,
    PUT_OBJECT,
    COPY_OBJECT,
    DELETE_OBJECT,
    CREATE_MULTIPART,
    UPLOAD_PART,
    COMPLETE_MULTIPART,
    ABORT_MULTIPART,
)

# Sub-resources of buckets and objects this gateway does not serve.
_UNSUPPORTED = frozenset(
    {
        "acl",
        "cors",
        "encryption",
        "lifecycle",
        "logging",
        "notification",
        "object-lock",
        "policy",
        "replication",
        "tagging",
        "uploads",
        "versioning",
        "versions",
        "website",
    }
)


def _unsupported(what: str) -> S3Error:
    return S3Error(501, "NotImplemented", f"{what} is not supported by the Lamina S3 gateway")


def operation(
    method: str, target: Target, query: Mapping[str, str], headers: Mapping[str, str]
) -> Operation:
    """The operation a request performs; ``NotImplemented`` for one the gateway lacks."""
    if not target.bucket:
        if method == "GET":
            return LIST_BUCKETS
        raise _unsupported(f"{method} on the service")
    if not target.key:
        if method == "HEAD":
            return HEAD_BUCKET
        if method == "GET":
            if "location" in query:
                return BUCKET_LOCATION
            unsupported = _UNSUPPORTED & query.keys()
            if unsupported:
                raise _unsupported(f"the bucket sub-resource {sorted(unsupported)[0]!r}")
            return LIST_OBJECTS
        if method == "POST" and "delete" in query:
            return DELETE_OBJECTS
        raise _unsupported(
            f"{method} on a bucket (repositories are made and removed through the API)"
        )
    if "uploadId" in query:
        by_method = {"PUT": UPLOAD_PART, "POST": COMPLETE_MULTIPART, "DELETE": ABORT_MULTIPART}
        if method in by_method and (method != "PUT" or "partNumber" in query):
            return by_method[method]
        raise _unsupported(f"{method} on a multipart upload (ListParts)")
    unsupported = (_UNSUPPORTED - {"uploads"}) & query.keys()
    if unsupported:
        raise _unsupported(f"the object sub-resource {sorted(unsupported)[0]!r}")
    if method in ("GET", "HEAD"):
        return GET_OBJECT
    if method == "PUT":
        return COPY_OBJECT if "x-amz-copy-source" in headers else PUT_OBJECT
    if method == "POST" and "uploads" in query:
        return CREATE_MULTIPART
    if method == "DELETE":
        return DELETE_OBJECT
    raise _unsupported(f"{method} on an object")


# What is answered as an S3 error: the gateway's own, and every error the API maps.
_ANSWERED: tuple[type[Exception], ...] = (S3Error, *HANDLED_ERRORS)


def _target(path: str) -> Target:
    bucket, _, key = path.lstrip("/").partition("/")
    return Target(bucket, key)


class Gateway:
    """Serves S3 requests for ``app`` (whose ``state.services`` it uses)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send, prefix: str) -> None:
        scope["app"] = self._app
        request_id = ensure_request_id(scope)
        body = _Body(scope, receive)
        request = Request(scope, body.receive)
        target = _target(scope["path"][len(prefix) :])
        try:
            set_target(request, target)
            chosen = operation(scope["method"], target, dict(request.query_params), request.headers)
            access = await prelude(request, chosen.declaration)
            response = await chosen.handler(request, self._app.state.services, access)
        except _ANSWERED as exc:
            response = _error(s3_error_for(exc), scope, request_id)
        except ClientDisconnect:
            log_disconnect(scope, request_id)
            return
        except Exception:
            log_unhandled(scope, request_id)
            response = _error(S3Error(500, "InternalError", "internal error"), scope, request_id)
        encoded = request_id.encode("ascii")
        response.raw_headers.extend([(b"x-request-id", encoded), (b"x-amz-request-id", encoded)])
        if not body.done:
            # Answered before its body was read (a refusal): what the client still sends must
            # not be read as the connection's next request.
            response.raw_headers.append((b"connection", b"close"))
        try:
            await response(scope, receive, send)
        except Exception:
            log_unhandled(scope, request_id)
            raise


class _Body:
    """The request's ``receive``, noting whether its body was read to the end."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._receive = receive
        headers = dict(scope["headers"])
        self.done = b"transfer-encoding" not in headers and headers.get(b"content-length") in (
            None,
            b"0",
        )

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message


def _error(error: S3Error, scope: Scope, request_id: str) -> Response:
    if scope["method"] == "HEAD":
        return Response(status_code=error.status, headers=error.headers)
    body = error_document(error, scope["path"], request_id)
    return Response(
        body, status_code=error.status, media_type="application/xml", headers=error.headers
    )
