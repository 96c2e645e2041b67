"""Connectors and imports: an organization's external sources (S3), attached to repositories,
and import jobs that bring a source's objects (or another repository's) into a repository as
one commit. ``docs/imports.md`` describes them."""

from lamina_server.imports.connectors import ConnectorRecord, Connectors
from lamina_server.imports.errors import (
    ConnectionFailed,
    ConnectorDisabled,
    ConnectorGone,
    ConnectorInvalid,
    ConnectorNotAttached,
    ConnectorNotFound,
    ImportInvalid,
    ImportNotFound,
    ImportsError,
    SourceChanged,
)
from lamina_server.imports.jobs import ImportJobRecord
from lamina_server.imports.runner import Imports

__all__ = [
    "ConnectionFailed",
    "ConnectorDisabled",
    "ConnectorGone",
    "ConnectorInvalid",
    "ConnectorNotAttached",
    "ConnectorNotFound",
    "ConnectorRecord",
    "Connectors",
    "ImportInvalid",
    "ImportJobRecord",
    "ImportNotFound",
    "Imports",
    "ImportsError",
    "SourceChanged",
]
