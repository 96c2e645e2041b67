"""SDK models as the JSON the tools return (the shapes of cerebral's MCP server, plus Lamina's
fields where cerebral has none)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lamina._async.resources.commits import AsyncCommit
from lamina._async.resources.repositories import AsyncRepository
from lamina.models.objects import ListingEntry, SourceMetadata


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def repository_json(repo: AsyncRepository) -> dict[str, Any]:
    """``{id, name, description, visibility, created_at}`` of a loaded repository."""
    return {
        "id": repo.id,
        "name": repo.name,
        "description": repo.description,
        "visibility": repo.visibility,
        "created_at": iso(repo.created_at),
    }


def source_metadata_json(source: SourceMetadata | None) -> dict[str, Any] | None:
    """Where an imported object came from; ``reproducible`` is always ``None`` (Lamina does
    not record it; the key keeps cerebral's shape)."""
    if source is None:
        return None
    return {
        "connector_id": source.connector_id,
        "connector_type": source.connector_type,
        "source_path": source.source_path,
        "version_id": source.version_id,
        "source_etag": source.source_etag,
        "import_time": iso(source.import_time),
        "import_job_id": source.import_job_id,
        "reproducible": None,
    }


def listing_json(item: ListingEntry) -> dict[str, Any]:
    """``{path, type}``; an object adds ``size``, ``last_modified``, ``content_type``,
    ``metadata`` and ``source_metadata``, and a diff entry its ``status``."""
    result: dict[str, Any] = {"path": item.path, "type": item.type}
    if item.status is not None:
        result["status"] = item.status
    entry = item.entry
    if entry is not None:
        result["size"] = entry.size
        result["last_modified"] = iso(entry.last_modified)
        result["content_type"] = entry.content_type or None
        result["metadata"] = dict(entry.metadata)
        result["source_metadata"] = source_metadata_json(entry.source_metadata)
    return result


def commit_json(commit: AsyncCommit) -> dict[str, Any]:
    """A loaded commit: id, message, committer, date, parents, metadata."""
    data = commit.data
    return {
        "id": data.id,
        "message": data.message,
        "committer": data.committer,
        "committer_type": data.committer_type,
        "creation_date": iso(data.creation_date),
        "parents": list(data.parents),
        "metadata": dict(data.metadata),
    }
