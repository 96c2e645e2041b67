"""A 1 GiB upload and a 1 GiB streamed download: Lamina's AsyncClient vs curl.

Both sides do the same work against one reference server started by this script:

- up: Lamina ``put(path, Path)`` (a multipart upload streamed from disk) then the commit's
  finalize; curl PUTs the file to a fresh upload URL (``curl -T``), then the finalize call.
- down: Lamina ``get(path, cache=False)`` + ``iter_bytes()`` to ``/dev/null``; curl GETs the
  signed download URL the API redirects to, to ``/dev/null``.

Each Lamina transfer runs in a child process, which reports its peak RSS (``VmHWM``).

    .venv/bin/python scripts/bench/large_transfer.py [--size-mib 1024]

Goals: >= 0.9x curl's speed up, >= 0.8x down; Lamina's peak RSS < 100 MiB during each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CURL = "/usr/bin/curl"
OBJECT = "big/blob.bin"
RSS_LIMIT_MIB = 100


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def child_upload(endpoint: str, key: str, repo_path: str, source: Path) -> float:
    import lamina

    async with lamina.AsyncClient(api_key=key, endpoint_url=endpoint) as client:
        repo = client.repository(repo_path)
        start = time.perf_counter()
        async with repo.session() as session:
            await session.objects.put(OBJECT, source)
            await session.commit("large upload")
        return time.perf_counter() - start


async def child_download(endpoint: str, key: str, repo_path: str) -> float:
    import lamina

    async with lamina.AsyncClient(api_key=key, endpoint_url=endpoint) as client:
        repo = client.repository(repo_path)
        start = time.perf_counter()
        received = 0
        with open(os.devnull, "wb") as sink:
            async with repo.objects.get(OBJECT, cache=False) as reader:
                async for chunk in reader.iter_bytes(None):
                    sink.write(chunk)
                    received += len(chunk)
        elapsed = time.perf_counter() - start
        if received != reader.content_length:
            raise RuntimeError(f"received {received} bytes of {reader.content_length}")
        return elapsed


def run_child(
    mode: str, endpoint: str, key: str, repo_path: str, source: Path
) -> tuple[float, float]:
    """Run one Lamina transfer in a fresh interpreter; returns (seconds, peak RSS MiB)."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, endpoint, key, repo_path, str(source)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return result["seconds"], result["rss_mib"]


def curl_upload(api: httpx.Client, base: str, source: Path) -> float:
    start = time.perf_counter()
    session_id = api.post(f"{base}/sessions").raise_for_status().json()["session_id"]
    params = {"session_id": session_id, "path": OBJECT}
    ticket = api.put(f"{base}/object", params=params).raise_for_status().json()
    headers = subprocess.run(
        [
            CURL,
            "-sS",
            "--fail",
            "-T",
            str(source),
            "-H",
            "Content-Type: application/octet-stream",
            "-D",
            "-",
            "-o",
            os.devnull,
            ticket["upload_url"],
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    etag = next(
        line.split(":", 1)[1].strip().strip('"')
        for line in headers.splitlines()
        if line.lower().startswith("etag:")
    )
    api.post(
        f"{base}/object/finalize",
        params=params,
        json={
            "upload_token": ticket["upload_token"],
            "checksum": etag,
            "size_bytes": source.stat().st_size,
            "content_type": "application/octet-stream",
        },
    ).raise_for_status()
    api.post(f"{base}/sessions/{session_id}", json={"message": "curl upload"}).raise_for_status()
    return time.perf_counter() - start


def curl_download(api: httpx.Client, base: str) -> float:
    start = time.perf_counter()
    redirect = api.get(f"{base}/object", params={"path": OBJECT})
    if redirect.status_code != 307:
        raise RuntimeError(f"expected a 307, got {redirect.status_code}")
    subprocess.run(
        [CURL, "-sS", "--fail", "-o", os.devnull, redirect.headers["location"]], check=True
    )
    return time.perf_counter() - start


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for index in range(size_mib):
            out.write(index.to_bytes(8, "big") + block[8:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    if not os.path.exists(CURL):
        sys.exit(f"{CURL} is missing (apt-get install -y curl)")
    from lamina.testing import LocalServer

    with tempfile.TemporaryDirectory() as scratch, LocalServer() as server:
        source = Path(scratch) / "source.bin"
        make_file(source, args.size_mib)
        with httpx.Client(
            headers={"Authorization": f"Bearer {server.api_key}"},
            base_url=f"{server.endpoint_url}/api/v1",
            timeout=600,
        ) as api:
            for name in ("lamina-big", "curl-big"):
                api.post(
                    f"/organizations/{server.org}/repositories", json={"name": name}
                ).raise_for_status()
            lamina_repo = f"{server.org}/lamina-big"
            curl_base = f"/organizations/{server.org}/repositories/curl-big"
            # os.sync() between runs: no side pays for the other's write-back
            os.sync()
            up_s, up_rss = run_child(
                "upload", server.endpoint_url, server.api_key, lamina_repo, source
            )
            os.sync()
            curl_up_s = curl_upload(api, curl_base, source)
            os.sync()
            down_s, down_rss = run_child(
                "download", server.endpoint_url, server.api_key, lamina_repo, source
            )
            curl_down_s = curl_download(api, curl_base)

    mib = args.size_mib
    print(f"{mib} MiB object")
    print(
        f"  up:   lamina {up_s:6.2f} s ({mib / up_s:6.0f} MiB/s, peak RSS {up_rss:5.1f} MiB)"
        f"   curl {curl_up_s:6.2f} s ({mib / curl_up_s:6.0f} MiB/s)"
    )
    print(
        f"  down: lamina {down_s:6.2f} s ({mib / down_s:6.0f} MiB/s, peak RSS {down_rss:5.1f} MiB)"
        f"   curl {curl_down_s:6.2f} s ({mib / curl_down_s:6.0f} MiB/s)"
    )
    checks = [
        ("upload speed vs curl", curl_up_s / up_s, ">=", 0.9),
        ("download speed vs curl", curl_down_s / down_s, ">=", 0.8),
    ]
    for label, value, _, goal in checks:
        print(f"{label}: {value:.2f}x  (goal >= {goal}x) {'OK' if value >= goal else 'MISSED'}")
    for label, rss in (("upload", up_rss), ("download", down_rss)):
        verdict = "OK" if rss < RSS_LIMIT_MIB else "MISSED"
        print(f"peak RSS during {label}: {rss:.1f} MiB  (goal < {RSS_LIMIT_MIB} MiB) {verdict}")


def child_main(argv: list[str]) -> None:
    mode, endpoint, key, repo_path, source = argv
    if mode == "upload":
        seconds = asyncio.run(child_upload(endpoint, key, repo_path, Path(source)))
    else:
        seconds = asyncio.run(child_download(endpoint, key, repo_path))
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
