"""Where imported objects land: the folders a request names, and each object's path.

Both an import's ``source_prefix`` and its ``destination_path`` are folders (``raw`` and
``raw/`` are the same folder; empty is the root). An object at ``<source folder><rest>`` lands
at ``<destination folder><rest>``. For a connector, a ``source_prefix`` is read within the
connector's own prefix, unless it begins with that prefix (the tilde-sdk's README passes the
connector's whole prefix again, ``source_uri="s3://b/datasets/"`` with
``source_prefix="datasets/"``): it can never reach outside the connector's prefix. Pure.
"""

from __future__ import annotations

from lamina_server.imports.errors import ImportInvalid

MAX_PATH_BYTES = 1024  # as for every object path (lamina_server.api.validation)
SHOWN = 10


def folder(value: str, field: str) -> str:
    """``value`` as a folder: ``""`` or ``"a/b/"``; :class:`ImportInvalid` naming ``field``
    when a segment is empty, ``.`` or ``..`` or holds NUL."""
    stripped = value.strip("/")
    if not stripped:
        return ""
    if problem(stripped):
        raise ImportInvalid(f"{field} {value!r}: {problem(stripped)}")
    return f"{stripped}/"


def connector_folder(connector_prefix: str, source_prefix: str) -> str:
    """The folder, relative to the connector's prefix, that an import reads."""
    wanted = folder(source_prefix, "source_prefix")
    if connector_prefix and wanted.startswith(connector_prefix):
        return wanted[len(connector_prefix) :]
    return wanted


def problem(path: str) -> str | None:
    """Why ``path`` cannot be an object path (the rule of every stored path), or None."""
    if "\x00" in path:
        return "it holds a NUL character"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return "it has an empty, '.' or '..' segment"
    return None


def shown(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
