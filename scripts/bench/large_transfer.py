"""A 1 GiB upload and a 1 GiB streamed download: Lamina's AsyncClient vs curl.

Both sides do the same work against one reference server started by this script:

- up: Lamina ``put(path, Path)`` (a multipart upload streamed from disk) in a session, then
  the commit; curl PUTs the file to a fresh upload URL (``curl -T``) between the same API
  calls (session, upload ticket, finalize, commit).
- down: both read the same object: Lamina ``get(path, cache=False)`` + ``iter_bytes(None)``
  to ``/dev/null``; curl follows the API's redirect to the signed download URL, to
  ``/dev/null``.

Each Lamina transfer runs in a fresh interpreter (as a user's script would), which reports its
wall time, its CPU time (user + system, ``getrusage``) and its peak RSS (``VmHWM``); curl's CPU
time comes from ``getrusage(RUSAGE_CHILDREN)``. The transfers run in ``--rounds`` rounds that
alternate who goes first, ``os.sync()`` before each upload; ratios are of median times. CPU
time per GiB is the client's own cost, which the wall clock hides when the server is the
bottleneck or the machine is shared.

    .venv/bin/python scripts/bench/large_transfer.py [--size-mib 1024] [--rounds 3]

Goals: >= 0.9x curl's speed up, >= 0.8x down; Lamina's peak RSS < 100 MiB during each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from lamina.testing import LocalServer

CURL = "/usr/bin/curl"
OBJECT = "big/blob.bin"
RSS_LIMIT_MIB = 100


class Run:
    """One transfer: wall seconds, client CPU seconds, peak RSS (MiB, Lamina only)."""

    def __init__(self, seconds: float, cpu: float, rss_mib: float = 0.0) -> None:
        self.seconds = seconds
        self.cpu = cpu
        self.rss_mib = rss_mib


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


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


def child_main(argv: list[str]) -> None:
    mode, endpoint, key, repo_path, source = argv
    cpu_before = cpu_seconds(resource.RUSAGE_SELF)
    if mode == "upload":
        seconds = asyncio.run(child_upload(endpoint, key, repo_path, Path(source)))
    else:
        seconds = asyncio.run(child_download(endpoint, key, repo_path))
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mib": peak_rss_mib()}))


def run_lamina(mode: str, server: LocalServer, repo_path: str, source: Path) -> Run:
    """One Lamina transfer in a fresh interpreter (the CPU time counts the client's setup and
    the transfer, not the interpreter's start-up and imports)."""
    command = [sys.executable, __file__, "--child", mode, server.endpoint_url, server.api_key]
    output = subprocess.run(
        [*command, repo_path, str(source)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return Run(result["seconds"], result["cpu"], result["rss_mib"])


def curl(*args: str) -> tuple[str, float]:
    """Run curl; its stdout and the CPU seconds it used."""
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [CURL, "-sS", "--fail", *args], check=True, capture_output=True, text=True
    ).stdout
    return output, cpu_seconds(resource.RUSAGE_CHILDREN) - before


def curl_upload(api: httpx.Client, base: str, source: Path) -> Run:
    start = time.perf_counter()
    session_id = api.post(f"{base}/sessions").raise_for_status().json()["session_id"]
    params = {"session_id": session_id, "path": OBJECT}
    ticket = api.put(f"{base}/object", params=params).raise_for_status().json()
    headers, cpu = curl(
        "-T",
        str(source),
        "-H",
        "Content-Type: application/octet-stream",
        "-D",
        "-",
        "-o",
        os.devnull,
        ticket["upload_url"],
    )
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
    return Run(time.perf_counter() - start, cpu)


def curl_download(api: httpx.Client, base: str) -> Run:
    start = time.perf_counter()
    redirect = api.get(f"{base}/object", params={"path": OBJECT})
    if redirect.status_code != 307:
        raise RuntimeError(f"expected a 307, got {redirect.status_code}")
    _, cpu = curl("-o", os.devnull, redirect.headers["location"])
    return Run(time.perf_counter() - start, cpu)


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for index in range(size_mib):
            out.write(index.to_bytes(8, "big") + block[8:])


def alternate(round_index: int, first: Callable[[], Run], second: Callable[[], Run]) -> None:
    """Run both, the first one first on even rounds."""
    if round_index % 2:
        second()
        first()
    else:
        first()
        second()


def summary(label: str, mib: int, lamina: list[Run], peer: list[Run], goal: float) -> bool:
    lamina_s = statistics.median(run.seconds for run in lamina)
    peer_s = statistics.median(run.seconds for run in peer)
    gib = mib / 1024
    lamina_cpu = statistics.median(run.cpu for run in lamina) / gib
    peer_cpu = statistics.median(run.cpu for run in peer) / gib
    rss = max(run.rss_mib for run in lamina)
    ratio = peer_s / lamina_s
    rounds = " ".join(f"{p.seconds / run.seconds:.2f}" for run, p in zip(lamina, peer, strict=True))
    print(
        f"  {label:4}  lamina {lamina_s:6.2f} s ({mib / lamina_s:5.0f} MiB/s, CPU "
        f"{lamina_cpu:4.2f} s/GiB, peak RSS {rss:5.1f} MiB)   curl {peer_s:6.2f} s "
        f"({mib / peer_s:5.0f} MiB/s, CPU {peer_cpu:4.2f} s/GiB)"
    )
    fast, small = ratio >= goal, rss < RSS_LIMIT_MIB
    print(
        f"        speed vs curl {ratio:.2f}x (goal >= {goal}x; per round: {rounds}) "
        f"{_verdict(fast)}; peak RSS goal < {RSS_LIMIT_MIB} MiB {_verdict(small)}"
    )
    return fast and small


def _verdict(met: bool) -> str:
    return "OK" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(CURL):
        sys.exit(f"{CURL} is missing (apt-get install -y curl)")
    runs: dict[str, list[Run]] = {
        "lamina up": [],
        "curl up": [],
        "lamina down": [],
        "curl down": [],
    }
    with tempfile.TemporaryDirectory() as scratch, LocalServer() as server:
        source = Path(scratch) / "source.bin"
        make_file(source, args.size_mib)
        org = server.org
        with httpx.Client(
            headers={"Authorization": f"Bearer {server.api_key}"},
            base_url=f"{server.endpoint_url}/api/v1",
            timeout=600,
        ) as api:

            def new_repo(name: str) -> str:
                api.post(
                    f"/organizations/{org}/repositories", json={"name": name}
                ).raise_for_status()
                return name

            def record(label: str, transfer: Callable[[], Run]) -> Callable[[], Run]:
                def run() -> Run:
                    if label.endswith("up"):
                        os.sync()  # no side pays for the other's write-back
                    result = transfer()
                    runs[label].append(result)
                    return result

                return run

            for index in range(args.rounds):
                lamina_repo = f"{org}/{new_repo(f'lamina-big-{index}')}"
                curl_base = f"/organizations/{org}/repositories/{new_repo(f'curl-big-{index}')}"
                lamina_base = f"/organizations/{lamina_repo.replace('/', '/repositories/')}"
                alternate(
                    index,
                    record("lamina up", partial(run_lamina, "upload", server, lamina_repo, source)),
                    record("curl up", partial(curl_upload, api, curl_base, source)),
                )
                alternate(  # both read the object Lamina uploaded
                    index,
                    record(
                        "lamina down", partial(run_lamina, "download", server, lamina_repo, source)
                    ),
                    record("curl down", partial(curl_download, api, lamina_base)),
                )

    print(f"{args.size_mib} MiB object, {args.rounds} rounds (medians)")
    up = summary("up", args.size_mib, runs["lamina up"], runs["curl up"], 0.9)
    down = summary("down", args.size_mib, runs["lamina down"], runs["curl down"], 0.8)
    print(f"all goals met: {'yes' if up and down else 'no'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
