"""The body of a batched upload: a POSIX tar archive (pax), written member by member.

Each object is a regular file at its object path. A path that ustar cannot hold (over 100
bytes, or not ASCII) and the object's attributes (``LAMINA.attributes``: JSON with
``content_type`` and ``metadata``) go in a pax extended header before it. Pure: the batch
sender (``lamina._async._batches``) joins the pieces and sends them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from lamina._errors import InvalidArgumentError

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
    """One archive member: its header block(s), ``data``, and the padding to a block.

    The same bytes as :mod:`tarfile`'s pax format (its ``TarInfo.tobuf``) for a regular file
    of mode 0644 and no owner or time, built directly: a batch holds many small members, and
    the general writer costs more per member than sending it.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"object path {path!r} is not valid UTF-8 text") from None
    records: list[tuple[str, str]] = []
    if "\x00" in path:
        records.append(("path", path))  # a ustar name ends at a NUL: the server is to see it
    if attributes_json is not None:
        records.append((ATTRIBUTES_RECORD, attributes_json))
    if not path.isascii() or len(path) > _NAME_LENGTH:
        if "\x00" not in path:
            records.append(("path", path))
        name = path.encode("ascii", "replace")
    else:
        name = path.encode("ascii")
    pieces = []
    if records:
        pax = b"".join(_record(key, value) for key, value in records)
        pieces += [_header(_PAX_NAME, len(pax), 0, b"x"), pax, bytes(-len(pax) % BLOCK)]
    pieces += [_header(name, len(data), 0o644, b"0"), data, bytes(-len(data) % BLOCK)]
    return b"".join(pieces)


_NAME_LENGTH = 100
_PAX_NAME = b"././@PaxHeader"
_ZERO8 = b"0000000\x00"  # an 8-byte octal field holding 0
_ZERO12 = b"00000000000\x00"


def _header(name: bytes, size: int, mode: int, typeflag: bytes) -> bytes:
    """A ustar header block (size and mode in octal), with its checksum."""
    block = b"".join(
        (
            name[:_NAME_LENGTH].ljust(_NAME_LENGTH, b"\x00"),
            b"%07o\x00" % mode if mode else _ZERO8,
            _ZERO8,  # uid
            _ZERO8,  # gid
            b"%011o\x00" % size,
            _ZERO12,  # mtime
            b"        ",  # the checksum, as spaces while it is computed
            typeflag,
            bytes(100),  # linkname
            b"ustar\x0000",
            bytes(247),  # uname, gname, devmajor, devminor (none: a regular file), prefix, pad
        )
    )
    return b"%s%06o\x00%s" % (block[:148], sum(block), block[155:])


def _record(key: str, value: str) -> bytes:
    """A pax record, ``"<length> <key>=<value>\\n"``, its length counting its own digits."""
    body = b" %s=%s\n" % (key.encode("utf-8"), value.encode("utf-8"))
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return b"%d%s" % (length, body)
