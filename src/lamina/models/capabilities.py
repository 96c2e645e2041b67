"""What a server offers beyond the contract (``GET /api/v1/capabilities``, a Lamina
extension); a server without that document offers nothing beyond it."""

from __future__ import annotations

from attrs import field, frozen


@frozen
class OneRequestPut:
    """Objects up to ``max_object_bytes`` go in one request (``POST .../object/upload``)."""

    max_object_bytes: int


@frozen
class BatchUpload:
    """Many objects in one tar archive (``POST .../objects/upload``)."""

    max_object_bytes: int
    max_objects: int
    format: str = "application/x-tar"


@frozen
class Extensions:
    one_request_put: OneRequestPut | None = None
    batch_upload: BatchUpload | None = None


@frozen
class Capabilities:
    extensions: Extensions = field(factory=Extensions)
