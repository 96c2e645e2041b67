"""S3's XML documents: the ones the gateway answers (built as text, escaped), and the two
request bodies it reads (CompleteMultipartUpload, Delete), parsed with a size bound."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from datetime import datetime
from xml.sax.saxutils import escape

from lamina_server.gateway.s3_errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def iso(moment: datetime) -> str:
    """S3's timestamp in listings: ``2026-12-04T21:40:36.000Z`` (``moment`` is in UTC)."""
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def element(name: str, value: str | int | bool) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def document(root: str, body: Iterable[str]) -> bytes:
    return (_DECLARATION + f'<{root} xmlns="{NAMESPACE}">' + "".join(body) + f"</{root}>").encode()


def error_document(error: S3Error, resource: str, request_id: str) -> bytes:
    return (
        _DECLARATION
        + "<Error>"
        + element("Code", error.code)
        + element("Message", error.message)
        + element("Resource", resource)
        + element("RequestId", request_id)
        + "</Error>"
    ).encode()


def _parse(body: bytes, root: str) -> ElementTree.Element:
    try:
        tree = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3Error(400, "MalformedXML", "the XML you provided was not well-formed") from None
    if _local(tree.tag) != root:
        raise S3Error(400, "MalformedXML", f"the XML document's root is not <{root}>")
    return tree


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(parent: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in parent if _local(child.tag) == name]


def _text(parent: ElementTree.Element, name: str) -> str | None:
    found = _children(parent, name)
    return (found[0].text or "") if found else None


def completed_parts(body: bytes) -> list[tuple[int, str]]:
    """``<CompleteMultipartUpload><Part><PartNumber/><ETag/></Part>…`` → (number, etag)."""
    parts: list[tuple[int, str]] = []
    for part in _children(_parse(body, "CompleteMultipartUpload"), "Part"):
        number, etag = _text(part, "PartNumber"), _text(part, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error(400, "MalformedXML", "a <Part> lacks its PartNumber or ETag")
        parts.append((int(number), etag.strip().strip('"')))
    if not parts:
        raise S3Error(400, "MalformedXML", "the upload names no <Part>")
    return parts


def deleted_keys(body: bytes) -> tuple[list[str], bool]:
    """``<Delete><Object><Key/></Object>…<Quiet/></Delete>`` → (keys, quiet)."""
    tree = _parse(body, "Delete")
    keys = []
    for item in _children(tree, "Object"):
        key = _text(item, "Key")
        if not key:
            raise S3Error(400, "MalformedXML", "an <Object> lacks its Key")
        keys.append(key)
    quiet = (_text(tree, "Quiet") or "").strip().lower() == "true"
    return keys, quiet
