"""The gateway's domain errors (the API maps them in its one map,
:mod:`lamina_server.api.errors`); what S3 clients are answered is :mod:`.s3_errors`.

::

    GatewayError
    └── CredentialNotFound   the caller has no S3 credential by that access key id (404)
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's errors; ``str()`` is a human message."""


class CredentialNotFound(GatewayError):
    def __init__(self, access_key_id: str) -> None:
        super().__init__(f"S3 credential {access_key_id!r} not found")
        self.access_key_id = access_key_id
