"""The write operations, into an open session only (``session-<id>/<path>``): PutObject,
CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
DeleteObject, DeleteObjects and CopyObject. A key at ``head`` or at a commit is refused
(``MethodNotAllowed``): nothing lands without a commit, made through the API.

Bytes stream into the blob store as they arrive (:mod:`.payload`) and are checked before the
object is staged, as an upload through the API is: a body that does not match what it was
signed or summed with is discarded, and nothing is staged. A multipart upload's id is a signed
token that names its repository, session, path and blob, so an upload of one session is
refused in another. A copy stages the source's entry again: the same blob, no byte copied.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from lamina_server.api.access import Access
from lamina_server.api.deps import Services
from lamina_server.api.errors import ApiError
from lamina_server.api.signing import TokenError
from lamina_server.api.validation import validate_content_type, validate_metadata, validate_path
from lamina_server.authz import Action, Resource
from lamina_server.gateway.admission import (
    ObjectKey,
    Target,
    check_also,
    parse_key,
    request_headers,
    signature_of,
    target_of,
)
from lamina_server.gateway.payload import Payload
from lamina_server.gateway.reads import read_entry, xml_response
from lamina_server.gateway.s3_errors import (
    S3Error,
    invalid_argument,
    no_such_upload,
    read_only,
    s3_error_for,
)
from lamina_server.gateway.s3_xml import completed_parts, deleted_keys, document, element, iso
from lamina_server.gateway.signing import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    ChunkSignatures,
)
from lamina_server.versioning import Claim, Entry

MULTIPART_UPLOAD = "s3-multipart-upload"
MULTIPART_TTL = 7 * 24 * 3600.0
MAX_PART_NUMBER = 10000
MAX_XML_BODY = (
    2 * 1024 * 1024
)  # a CompleteMultipartUpload of 10,000 parts, or a Delete of 1,000 keys
MAX_DELETE_KEYS = 1000


def _session_key(key: ObjectKey, raw: str) -> str:
    """The session a write goes into (refused at HEAD or a commit), its path checked."""
    if key.session_id is None:
        raise read_only(raw)
    validate_path(key.path, "key")
    return key.session_id


def _payload(request: Request) -> Payload:
    signature = signature_of(request)
    signed = signature.signed
    chunks = None
    if signed.payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        chunks = ChunkSignatures(signature.key, signed)
    return Payload(request.stream(), request_headers(request), signed.payload, chunks)


def _attributes(request: Request) -> tuple[str, dict[str, str]]:
    """The content type and the user metadata (``x-amz-meta-*``) a request sends."""
    headers = request_headers(request)
    metadata = {
        name.removeprefix("x-amz-meta-"): value.encode("latin-1").decode("utf-8", "replace")
        for name, value in headers.items()
        if name.startswith("x-amz-meta-")
    }
    return (
        validate_content_type(headers.get("content-type"), "Content-Type"),
        validate_metadata(metadata, "x-amz-meta-*"),
    )


async def _small_body(request: Request) -> bytes:
    """A request's XML body (at most :data:`MAX_XML_BODY`), checked as an upload is."""
    payload = _payload(request)
    parts: list[bytes] = []
    size = 0
    async for chunk in payload.chunks():
        size += len(chunk)
        if size > MAX_XML_BODY:
            raise S3Error(400, "MaxMessageLengthExceeded", "the request's XML body is too large")
        parts.append(chunk)
    body = b"".join(parts)
    payload.check(hashlib.md5(body).hexdigest())
    return body


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- single objects ---------------------------------------------------------------------------


async def put_object(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    session_id = _session_key(key, target.key)
    content_type, metadata = _attributes(request)
    repo = access.repo
    await services.versions.open_session(repo.id, session_id)
    payload = _payload(request)
    address = services.blobs.new_address()
    info = await services.blobs.write(address, payload.chunks())
    try:
        payload.check(info.etag)
    except S3Error:
        await services.blobs.discard(address)
        raise
    entry = Entry(info.address, info.size, info.etag, content_type, _now(), metadata)
    await services.staging.put(repo.id, session_id, key.path, entry, claim=Claim.INTERNAL)
    return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})


async def delete_object(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    session_id = _session_key(key, target.key)
    await services.versions.stage_delete(access.repo.id, session_id, key.path)
    return Response(status_code=204)


def _copy_source(header: str) -> Target:
    source = unquote(header.partition("?")[0]).lstrip("/")
    bucket, slash, key = source.partition("/")
    if not slash or not key:
        raise invalid_argument(f"x-amz-copy-source {header!r} is not '<bucket>/<key>'")
    return Target(bucket, key)


async def copy_object(request: Request, services: Services, access: Access) -> Response:
    """Stages the source's entry (any readable ref, of any readable bucket) at the key."""
    target = target_of(request)
    key = target.object_key
    session_id = _session_key(key, target.key)
    headers = request_headers(request)
    source = _copy_source(headers["x-amz-copy-source"])
    org = await services.identity.organization(source.organization)
    source_key = source.object_key
    await check_also(
        services,
        access,
        Action.GET_OBJECT,
        Resource(org, source.repository, source_key.path or None),
    )
    source_repo = await services.repositories.get(org, source.repository)
    entry = await read_entry(services, source_repo.id, source.key)
    copied = replace(entry, last_modified=_now())
    if headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE":
        content_type, metadata = _attributes(request)
        copied = replace(copied, content_type=content_type, metadata=metadata)
    await services.versions.open_session(access.repo.id, session_id)
    await services.staging.put(access.repo.id, session_id, key.path, copied)
    body = element("LastModified", iso(copied.last_modified)) + element("ETag", f'"{copied.etag}"')
    return xml_response(document("CopyObjectResult", [body]))


async def delete_objects(request: Request, services: Services, access: Access) -> Response:
    """DeleteObjects: each key authorized and answered on its own; deletes staged per session."""
    keys, quiet = deleted_keys(await _small_body(request))
    if len(keys) > MAX_DELETE_KEYS:
        raise S3Error(400, "MalformedXML", f"a Delete names at most {MAX_DELETE_KEYS} keys")
    resource = access.resource
    assert resource is not None
    errors: list[str] = []
    by_session: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for raw in dict.fromkeys(keys):
        try:
            key = parse_key(raw)
            session_id = _session_key(key, raw)
            await check_also(services, access, Action.DELETE_OBJECT, resource.at(key.path))
        except (S3Error, ApiError) as exc:
            error = s3_error_for(exc)
            if error.code == "NoSuchBucket":
                raise error from None
            errors.append(
                "<Error>"
                + element("Key", raw)
                + element("Code", error.code)
                + element("Message", error.message)
                + "</Error>"
            )
            continue
        by_session[session_id].append((raw, key.path))
    deleted: list[str] = []
    if by_session:  # once a key was authorized: the caller may learn the repository exists
        assert resource.organization is not None and resource.repository is not None
        repo = await services.repositories.get(resource.organization, resource.repository)
        for session_id, items in by_session.items():
            paths = [path for _, path in items]
            await services.versions.stage_delete_many(repo.id, session_id, paths)
            deleted.extend(raw for raw, _ in items)
    body = [] if quiet else [f"<Deleted>{element('Key', raw)}</Deleted>" for raw in deleted]
    return xml_response(document("DeleteResult", [*body, *errors]))


# --- multipart uploads ------------------------------------------------------------------------


def _upload_claims(
    services: Services, access: Access, upload_id: str, key: ObjectKey
) -> dict[str, object]:
    """The claims of a multipart upload id issued for exactly this repository and key."""
    try:
        claims = services.signer.verify(MULTIPART_UPLOAD, upload_id)
    except TokenError as exc:
        raise no_such_upload(f"the upload id {exc}") from None
    if (claims.get("r"), claims.get("s"), claims.get("p")) != (
        access.repo.id,
        key.session_id,
        key.path,
    ):
        raise no_such_upload("the upload id was issued for another bucket or key")
    return claims


async def create_multipart(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    session_id = _session_key(key, target.key)
    content_type, metadata = _attributes(request)
    repo = access.repo
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    upload = await services.blobs.start_multipart(address)
    claims = {
        "r": repo.id,
        "s": session_id,
        "p": key.path,
        "a": address,
        "u": upload,
        "c": content_type,
        "m": json.dumps(metadata),
    }
    upload_id = services.signer.sign(MULTIPART_UPLOAD, claims, ttl=MULTIPART_TTL)
    body = (
        element("Bucket", target.bucket)
        + element("Key", target.key)
        + element("UploadId", upload_id)
    )
    return xml_response(document("InitiateMultipartUploadResult", [body]))


def _part_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_NUMBER:
        raise invalid_argument(f"partNumber must be 1 to {MAX_PART_NUMBER}, not {text!r}")
    return int(text)


async def upload_part(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    _session_key(key, target.key)
    if "x-amz-copy-source" in request.headers:
        raise S3Error(501, "NotImplemented", "UploadPartCopy is not supported: use CopyObject")
    number = _part_number(request.query_params.get("partNumber", ""))
    claims = _upload_claims(services, access, request.query_params["uploadId"], key)
    payload = _payload(request)
    info = await services.blobs.write_part(
        str(claims["a"]), str(claims["u"]), number, payload.chunks()
    )
    payload.check(info.etag)
    return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})


async def complete_multipart(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    session_id = _session_key(key, target.key)
    claims = _upload_claims(services, access, request.query_params["uploadId"], key)
    parts = completed_parts(await _small_body(request))
    for (previous, _), (number, _) in itertools.pairwise(parts):
        if number <= previous:
            raise S3Error(
                400, "InvalidPartOrder", "the parts must be listed in ascending order, once each"
            )
    info = await services.blobs.complete_multipart(str(claims["a"]), str(claims["u"]), parts)
    metadata = json.loads(str(claims["m"]))
    entry = Entry(info.address, info.size, info.etag, str(claims["c"]), _now(), metadata)
    await services.staging.put(access.repo.id, session_id, key.path, entry)
    body = (
        element("Bucket", target.bucket)
        + element("Key", target.key)
        + element("ETag", f'"{info.etag}"')
    )
    return xml_response(document("CompleteMultipartUploadResult", [body]))


async def abort_multipart(request: Request, services: Services, access: Access) -> Response:
    target = target_of(request)
    key = target.object_key
    _session_key(key, target.key)
    claims = _upload_claims(services, access, request.query_params["uploadId"], key)
    await services.blobs.abort_multipart(str(claims["a"]), str(claims["u"]))
    return Response(status_code=204)
