"""Connector and import errors. The HTTP layer maps each class to one status and code.

::

    ImportsError
    ├── ConnectorNotFound       no connector of that id in the organization (404)
    ├── ConnectorGone           the connector was deleted (410)
    ├── ConnectorDisabled       the connector is disabled (423)
    ├── ConnectorInvalid        a connector's type, source or config is not one the server
    │                           can serve (400)
    ├── ConnectorNotAttached    the connector is not attached to the repository (404)
    ├── ConnectionFailed        the source cannot be reached or refuses the credentials (502)
    ├── ImportInvalid           an import request that cannot run (400)
    └── ImportNotFound          no import job of that id in the repository (404)

A job that fails while it runs does not raise: it ends ``failed`` with its cause, and
:class:`SourceChanged` (and :class:`ConnectionFailed`) name that cause inside the runner.
"""

from __future__ import annotations


class ImportsError(Exception):
    """Root of the connectors and imports domain's errors; ``str()`` is a human message that
    never holds a credential."""


class ConnectorNotFound(ImportsError):
    def __init__(self, connector_id: str) -> None:
        super().__init__(f"connector {connector_id!r} not found")


class ConnectorGone(ImportsError):
    def __init__(self, connector_id: str) -> None:
        super().__init__(f"connector {connector_id!r} was deleted")


class ConnectorDisabled(ImportsError):
    def __init__(self, connector_id: str) -> None:
        super().__init__(f"connector {connector_id!r} is disabled (enable it to use it)")


class ConnectorInvalid(ImportsError):
    pass


class ConnectorNotAttached(ImportsError):
    def __init__(self, connector_id: str, repository: str) -> None:
        super().__init__(
            f"connector {connector_id!r} is not attached to repository {repository!r} "
            "(attach it first: POST .../connectors)"
        )


class ConnectionFailed(ImportsError):
    """The source could not be reached, or refused: the message names the cause."""


class SourceChanged(ImportsError):
    """An object of the source changed (or went away) while an import read it."""


class ImportInvalid(ImportsError):
    pass


class ImportNotFound(ImportsError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"import job {job_id!r} not found")
