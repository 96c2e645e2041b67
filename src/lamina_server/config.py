"""Server configuration: where data lives, where the server listens, what it bootstraps."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamina_server.authz.generate import GeneratorSettings


API_PREFIX = "/api/v1"  # where the Tilde API and its extensions are served


def default_data_dir() -> Path:
    return Path.home() / ".lamina" / "data"


def default_config_path() -> Path:
    return Path.home() / ".lamina" / "config.toml"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app factory needs; built by the CLI or by tests.

    ``public_url`` is the externally visible base URL (scheme, host and port) used for absolute
    signed URLs; when unset, routes derive it from the request. ``database_url`` overrides the
    embedded SQLite database in ``data_dir``. ``blob_store`` (``s3://BUCKET[/prefix]?endpoint=…``)
    keeps object bytes in S3 rather than ``data_dir/blobs``; clients then send and fetch them
    there directly, through presigned URLs (:mod:`lamina_server.storage.blobs.s3`).

    The connection limits (applied by :mod:`lamina_server.serving`): a request's line and
    headers may take ``max_header_bytes`` and must arrive within ``header_timeout`` seconds (of
    the connection opening, or of the request's first byte); a connection idle between requests
    is closed after ``keep_alive_timeout`` seconds; past ``max_connections`` open connections, a
    new connection's request is answered 503; ``backlog`` connections may wait to be accepted.

    Sandboxes: an image name a request does not give is ``default_sandbox_image``; each sandbox
    may use ``sandbox_memory_limit`` bytes of memory and ``sandbox_max_processes`` processes.

    ``audit_log`` False records nothing in the audit log (for benchmarks and throwaway
    servers; :mod:`lamina_server.governance.audit`).

    ``advertise_url`` is where the other replicas of a deployment reach this one (requests for
    the sandboxes it runs are forwarded there: :mod:`lamina_server.api.forwarding`); when unset,
    the address it listens on (this machine's host name when it listens on every address).

    ``gc_interval``: seconds between garbage collections (:mod:`lamina_server.garbage`), of
    which one server sharing the database runs at a time; 0 runs none.

    ``s3_port``: a port of its own that answers the S3 gateway at its root (besides ``/s3`` on
    ``port``; :mod:`lamina_server.gateway`).

    ``upload_extensions`` False turns off Lamina's upload extensions (one-request puts and
    batched uploads, :mod:`lamina_server.api.direct_uploads`): the capabilities document then
    lists none, as a server that only speaks the contract would. They are never offered with a
    blob store clients reach directly (S3), where the API process moves no object bytes.

    ``policy_generator`` names an OpenAI-compatible endpoint for ``policies:generate``; unset,
    the built-in rule generator answers (:func:`lamina_server.authz.generate.policy_generator`).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8710
    org: str = "local"
    public_url: str | None = None
    database_url: str | None = None
    blob_store: str | None = field(default=None, repr=False)  # may carry a secret
    config_path: Path | None = field(default_factory=default_config_path)
    write_config: bool = True
    access_log: bool = False
    max_header_bytes: int = 64 * 1024
    header_timeout: int = 10
    keep_alive_timeout: int = 5
    max_connections: int = 1000
    backlog: int = 2048
    default_sandbox_image: str = "host"
    sandbox_memory_limit: int = 2 * 1024**3
    sandbox_max_processes: int = 256
    policy_generator: GeneratorSettings | None = None
    audit_log: bool = True
    gc_interval: float = 3600.0
    advertise_url: str | None = None
    s3_port: int | None = None
    upload_extensions: bool = True

    @property
    def replica_url(self) -> str:
        """Where the other replicas reach this one: ``advertise_url``, else the address it
        listens on."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where the server is reached from outside a request (links a sandbox hands out):
        ``public_url``, else the address it listens on."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def endpoint_url(self) -> str:
        """The URL clients use to reach this server (what the bootstrap config file records)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
