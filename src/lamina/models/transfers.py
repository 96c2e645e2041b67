"""Progress of bulk transfers."""

from __future__ import annotations

from attrs import frozen


@frozen
class TransferProgress:
    """A snapshot handed to the ``progress`` callback of ``upload_dir``/``download_dir``."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
