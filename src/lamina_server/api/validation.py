"""Input checks shared by the object routes: paths, user metadata, content types, checksums.

Every check raises :class:`~lamina_server.api.errors.ApiError` 400 with a message that names the
field and what is wrong with it, so bad input never reaches the engine or the blob store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lamina_server.api.errors import bad_request

MAX_PATH_BYTES = 1024
MAX_DELIMITER_CHARS = 16
MAX_METADATA_BYTES = 8192
MAX_CONTENT_TYPE_CHARS = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# RFC 9110 token characters: metadata keys travel as `X-Tilde-Meta-<key>` header names.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Header values: no control characters (tab is allowed), so nothing can split or end a header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEX_MD5 = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-[1-9][0-9]{0,4}")


def require(value: str, field: str) -> str:
    """Returns ``value`` unless it is empty (a required parameter sent as ``""``)."""
    if not value:
        raise bad_request(f"{field} is required")
    return value


def validate_path(path: str | None, field: str = "path") -> str:
    """Returns ``path`` if it is a valid object path, else raises a 400 naming ``field``.

    Valid: at most 1024 bytes of UTF-8 and no NUL; ``/``-separated segments, none of them
    empty (so no leading, trailing or doubled ``/``), ``.`` or ``..``. One rule everywhere, so
    every stored path is one a download can write back as a relative file path.
    """
    if path is None:
        raise bad_request(f"{field} is required", "invalid_path")
    if path == "":
        raise bad_request(f"{field} must not be empty", "invalid_path")
    if "\x00" in path:
        raise bad_request(f"{field} must not contain NUL characters", "invalid_path")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_request(f"{field} is not valid UTF-8", "invalid_path") from None
    if size > MAX_PATH_BYTES:
        raise bad_request(
            f"{field} is {size} bytes of UTF-8; the limit is {MAX_PATH_BYTES}", "invalid_path"
        )
    if path.startswith("/"):
        raise bad_request(f"{field} must not start with '/'", "invalid_path")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            shown = repr(segment) if segment else "an empty"
            raise bad_request(
                f"{field} must not contain {shown} segment (got {path!r})", "invalid_path"
            )
    return path


def validate_prefix(prefix: str | None, field: str = "prefix") -> str:
    """A listing prefix: may be empty, otherwise bounded like a path (no NUL, no oversize)."""
    if not prefix:
        return ""
    if "\x00" in prefix:
        raise bad_request(f"{field} must not contain NUL characters")
    try:
        size = len(prefix.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_request(f"{field} is not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise bad_request(f"{field} is {size} bytes of UTF-8; the limit is {MAX_PATH_BYTES}")
    return prefix


def validate_delimiter(delimiter: str | None) -> str | None:
    if delimiter is None or delimiter == "":
        return None
    if "\x00" in delimiter or len(delimiter) > MAX_DELIMITER_CHARS:
        raise bad_request(f"delimiter must be 1-{MAX_DELIMITER_CHARS} characters without NUL")
    return delimiter


def validate_metadata(metadata: Any, field: str = "metadata") -> dict[str, str]:
    """User metadata: a str→str map whose keys are header tokens and values header-safe."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise bad_request(f"{field} must be an object of string values")
    total = 0
    result: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise bad_request(
                f"{field} key {key!r} must be non-empty and use only letters, digits and "
                "!#$%&'*+.^_`|~- (it is sent as an X-Tilde-Meta-<key> header)"
            )
        if not isinstance(value, str):
            raise bad_request(f"{field}[{key!r}] must be a string")
        if _CONTROL.search(value):
            raise bad_request(f"{field}[{key!r}] must not contain control characters")
        try:
            total += len(key) + len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise bad_request(f"{field}[{key!r}] is not valid UTF-8") from None
        result[key] = value
    if total > MAX_METADATA_BYTES:
        raise bad_request(f"{field} is {total} bytes; the limit is {MAX_METADATA_BYTES}")
    return result


def validate_content_type(content_type: Any, field: str = "content_type") -> str:
    if content_type is None or content_type == "":
        return DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str):
        raise bad_request(f"{field} must be a string")
    if (
        len(content_type) > MAX_CONTENT_TYPE_CHARS
        or not content_type.isascii()
        or _CONTROL.search(content_type)
    ):
        raise bad_request(
            f"{field} must be at most {MAX_CONTENT_TYPE_CHARS} printable ASCII characters"
        )
    return content_type


def normalize_etag(value: Any, field: str) -> str:
    """An ETag or checksum as clients send it (quotes tolerated) → lower-case bare digest."""
    if not isinstance(value, str):
        raise bad_request(f"{field} must be a string")
    bare = value.strip().strip('"').lower()
    if not (_HEX_MD5.fullmatch(bare) or _MULTIPART_ETAG.fullmatch(bare)):
        raise bad_request(f"{field} {value!r} is not a hex MD5 digest")
    return bare


def validate_size(value: Any, field: str = "size_bytes") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"{field} must be a non-negative integer")
    return value
