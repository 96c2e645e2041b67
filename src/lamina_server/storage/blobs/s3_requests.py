"""The S3 requests ``obstore`` does not make, signed with :mod:`.sigv4` and sent with httpx:
multipart uploads whose parts clients send to presigned URLs (create, list parts, complete,
abort), a copy conditional on its source's ETag, and creating a bucket. An S3 error answer
becomes :class:`S3Error` carrying S3's error code; a transport failure a
:class:`~lamina_server.storage.blobs.BlobError`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from lamina_server.storage.blobs.base import BlobError
from lamina_server.storage.blobs.sigv4 import SigV4

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(BlobError):
    """S3 answered an error: ``code`` is its error code (``NoSuchUpload``, ``InvalidPart``…)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"blob store: {code}: {message}" if message else f"blob store: {code}")
        self.status = status
        self.code = code


def _find(element: ElementTree.Element, name: str) -> str:
    """The text of the first ``name`` under ``element``, namespaced or not."""
    found = element.find(f"{_NS}{name}")
    if found is None:
        found = element.find(name)
    return "" if found is None or found.text is None else found.text


def _parse(text: bytes) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(text)  # the configured store's own answer
    except ElementTree.ParseError:
        raise BlobError("blob store: the answer is not the XML S3 sends") from None


class S3Requests:
    def __init__(self, signer: SigV4, http: httpx.AsyncClient) -> None:
        self._signer = signer
        self._http = http

    async def _send(
        self,
        method: str,
        key: str,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        query = dict(query or {})
        signed = self._signer.headers(method, key, query, body, extra=headers or {})
        try:
            response = await self._http.request(
                method, self._signer.url(key), params=query, content=body, headers=signed
            )
        except httpx.HTTPError as exc:
            raise BlobError(f"blob store unreachable: {exc}") from None
        if response.status_code >= 300:
            code, message = f"HTTP {response.status_code}", ""
            if response.content:
                try:
                    error = ElementTree.fromstring(response.content)
                except ElementTree.ParseError:
                    pass
                else:
                    code, message = _find(error, "Code") or code, _find(error, "Message")
            raise S3Error(response.status_code, code, message)
        return response

    async def create_bucket(self) -> None:
        await self._send("PUT", "")

    async def create_multipart(self, key: str) -> str:
        response = await self._send("POST", key, {"uploads": ""})
        upload_id = _find(_parse(response.content), "UploadId")
        if not upload_id:
            raise BlobError("blob store: no UploadId in the answer to CreateMultipartUpload")
        return upload_id

    async def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        """``part number -> (ETag without quotes, size)`` of the parts uploaded so far."""
        parts: dict[int, tuple[str, int]] = {}
        marker = "0"
        while True:
            query = {"uploadId": upload_id, "part-number-marker": marker}
            listing = _parse((await self._send("GET", key, query)).content)
            for part in [*listing.iter(f"{_NS}Part"), *listing.iter("Part")]:
                number, etag = int(_find(part, "PartNumber")), _find(part, "ETag").strip('"')
                parts[number] = (etag.lower(), int(_find(part, "Size")))
            if _find(listing, "IsTruncated") != "true":
                return parts
            marker = _find(listing, "NextPartNumberMarker")

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        body = "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>&quot;{etag}&quot;</ETag></Part>"
            for number, etag in parts
        )
        xml = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        response = await self._send("POST", key, {"uploadId": upload_id}, xml)
        # S3 may answer 200 with an error document once it has started to complete.
        answer = _parse(response.content)
        if answer.tag.endswith("Error"):
            raise S3Error(200, _find(answer, "Code"), _find(answer, "Message"))

    async def multipart_uploads(self, prefix: str) -> list[tuple[str, str, str]]:
        """``(key, upload id, initiated)`` of the multipart uploads in progress under
        ``prefix`` (``initiated`` as S3 writes it, ISO 8601)."""
        uploads: list[tuple[str, str, str]] = []
        markers = {"key-marker": "", "upload-id-marker": ""}
        while True:
            query = {"uploads": "", "prefix": prefix, **markers}
            listing = _parse((await self._send("GET", "", query)).content)
            for upload in [*listing.iter(f"{_NS}Upload"), *listing.iter("Upload")]:
                key, upload_id = _find(upload, "Key"), _find(upload, "UploadId")
                uploads.append((key, upload_id, _find(upload, "Initiated")))
            if _find(listing, "IsTruncated") != "true":
                return uploads
            markers = {
                "key-marker": _find(listing, "NextKeyMarker"),
                "upload-id-marker": _find(listing, "NextUploadIdMarker"),
            }

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._send("DELETE", key, {"uploadId": upload_id})

    async def copy_if_match(self, source: str, destination: str, etag: str) -> None:
        """Server-side copy of ``source`` to ``destination`` only while ``source``'s ETag is
        ``etag`` (412 ``PreconditionFailed`` otherwise)."""
        location = quote(f"/{self._signer.bucket}/{source}", safe="/-_.~")
        headers = {"x-amz-copy-source": location, "x-amz-copy-source-if-match": f'"{etag}"'}
        response = await self._send("PUT", destination, headers=headers)
        answer = _parse(response.content)
        if answer.tag.endswith("Error"):
            raise S3Error(200, _find(answer, "Code"), _find(answer, "Message"))
