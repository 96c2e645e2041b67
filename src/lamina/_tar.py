"""The body of a batched upload: a POSIX tar archive (pax), written member by member.

Each object is a regular file at its object path. A path that ustar cannot hold (over 100
bytes, or not ASCII) and the object's attributes (``LAMINA.attributes``: JSON with
``content_type`` and ``metadata``) go in a pax extended header before it. Pure: the batch
sender (``lamina._async._batches``) joins the pieces and sends them.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping

__all__ = ["ATTRIBUTES_RECORD", "END", "member"]

BLOCK = 512
ATTRIBUTES_RECORD = "LAMINA.attributes"
#: The two zero blocks that end an archive.
END = bytes(2 * BLOCK)


def attributes(content_type: str | None, metadata: Mapping[str, str] | None) -> str | None:
    """The JSON of an object's attributes, or None when it has none to send."""
    fields: dict[str, object] = {}
    if content_type:
        fields["content_type"] = content_type
    if metadata:
        fields["metadata"] = dict(metadata)
    return json.dumps(fields, separators=(",", ":")) if fields else None


def member(path: str, data: bytes, attributes_json: str | None = None) -> bytes:
    """One archive member: its header block(s), ``data``, and the padding to a block."""
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o644
    records: dict[str, str] = {}
    if "\x00" in path:
        records["path"] = path  # a ustar name ends at a NUL: the server is to see it, and refuse
    if attributes_json is not None:
        records[ATTRIBUTES_RECORD] = attributes_json
    info.pax_headers = records
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    return b"".join((header, data, bytes(-len(data) % BLOCK)))
