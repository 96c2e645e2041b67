"""Sandbox errors. The HTTP layer maps each class to one status and code.

::

    SandboxError
    ├── SandboxNotFound        unknown sandbox (or one of another repository)
    ├── SandboxFinished        the sandbox is terminal: nothing more can run in it (410)
    ├── SandboxNotReady        the sandbox is still starting (503)
    ├── WrongMode              the operation is for another mode (400)
    ├── SandboxStateConflict   the operation does not fit the sandbox's state (409)
    └── SandboxElsewhere       another replica runs it (the HTTP layer forwards the request)
"""

from __future__ import annotations


class SandboxError(Exception):
    """Root of the sandbox errors; ``str()`` is a human message."""


class SandboxNotFound(SandboxError):
    def __init__(self, sandbox_id: str) -> None:
        super().__init__(f"sandbox {sandbox_id!r} not found")


class SandboxFinished(SandboxError):
    def __init__(self, sandbox_id: str, status: str, reason: str) -> None:
        super().__init__(f"sandbox {sandbox_id!r} has already finished ({status}/{reason})")


class SandboxNotReady(SandboxError):
    def __init__(self, sandbox_id: str) -> None:
        super().__init__(f"sandbox {sandbox_id!r} is still starting; wait until it runs")


class WrongMode(SandboxError):
    pass


class SandboxStateConflict(SandboxError):
    pass


class SandboxElsewhere(SandboxError):
    """The sandbox's processes (or its finished log) are in another replica, ``replica_id``."""

    def __init__(self, sandbox_id: str, replica_id: str) -> None:
        super().__init__(f"sandbox {sandbox_id!r} runs in replica {replica_id}")
        self.replica_id = replica_id
