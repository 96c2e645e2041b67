"""Many small uploads at once: Lamina's AsyncClient vs tilde-sdk (threads) vs raw aiohttp.

Each contender puts N objects of 4 KiB into one session of its own repository with 32 in
flight, then commits. Lamina puts each in one request (``POST .../object/upload``, the
one-request put the server advertises: docs/uploads.md); "lamina 3-req" is the same client
told to keep to the contract (``upload_extensions=False``). The others make the contract's
three requests: PUT .../object (an upload URL), PUT <upload URL> (the bytes, no API key),
POST .../object/finalize. One reference server, started by this script, serves them all.

Each contender first warms up (50 puts), then the count is split into ``--rounds`` rounds
that rotate who goes first, each on a fresh repository. Times are summed per contender; the
client CPU time (this process, all threads: the server runs in its own) is reported per put,
the steadier figure when the server or a shared machine limits the wall clock. A run that
fails (tilde-sdk 0.7.9 now and then fails a presigned upload with EBADF when its threads
share one client) is reported and run again once on a fresh repository.

    .venv/bin/python scripts/bench/parallel_upload.py [--count 2000] [--concurrency 32]

Goals (throughput ratios): Lamina >= 6.0x tilde-sdk and >= 1.0x raw aiohttp (its three
requests); Lamina on the three requests >= 0.9x raw aiohttp on them, with a client CPU time per
put at most 1.2x raw aiohttp's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import httpx

import lamina
from lamina.testing import LocalServer

SIZE = 4 * 1024


async def run_lamina(
    server: LocalServer, repo_name: str, count: int, concurrency: int, *, extensions: bool
) -> float:
    data = os.urandom(SIZE)
    async with lamina.AsyncClient(
        api_key=server.api_key,
        endpoint_url=server.endpoint_url,
        max_concurrency=concurrency,
        upload_extensions=extensions,
    ) as client:
        repo = client.repository(f"{server.org}/{repo_name}")
        start = time.perf_counter()
        session = await repo.session()
        gate = asyncio.Semaphore(concurrency)

        async def put(index: int) -> None:
            async with gate:
                await session.objects.put(f"f/{index:05d}", data)

        await asyncio.gather(*(put(index) for index in range(count)))
        await session.commit("bench")
        return time.perf_counter() - start


def run_tilde(server: LocalServer, repo_name: str, count: int, concurrency: int) -> float:
    import tilde

    data = os.urandom(SIZE)
    client = tilde.Client(api_key=server.api_key, endpoint_url=server.endpoint_url)
    try:
        repo = client.repository(f"{server.org}/{repo_name}")
        start = time.perf_counter()
        session = repo.session()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda i: session.objects.put(f"f/{i:05d}", data), range(count)))
        session.commit("bench")
        return time.perf_counter() - start
    finally:
        client.close()


async def run_raw(server: LocalServer, repo_name: str, count: int, concurrency: int) -> float:
    data = os.urandom(SIZE)
    base = f"{server.endpoint_url}/api/v1/organizations/{server.org}/repositories/{repo_name}"
    auth = {"Authorization": f"Bearer {server.api_key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        async with http.post(f"{base}/sessions", headers=auth) as response:
            session_id = (await response.json())["session_id"]
        gate = asyncio.Semaphore(concurrency)

        async def put(index: int) -> None:
            params = {"session_id": session_id, "path": f"f/{index:05d}"}
            async with gate:
                async with http.put(f"{base}/object", params=params, headers=auth) as response:
                    response.raise_for_status()
                    ticket = await response.json()
                async with http.put(
                    ticket["upload_url"],
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                ) as response:
                    response.raise_for_status()
                    etag = response.headers["ETag"].strip('"')
                body = {
                    "upload_token": ticket["upload_token"],
                    "content_type": "application/octet-stream",
                    "checksum": etag,
                    "size_bytes": len(data),
                }
                async with http.post(
                    f"{base}/object/finalize",
                    params=params,
                    headers={**auth, "Content-Type": "application/json"},
                    data=json.dumps(body),
                ) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(put(index) for index in range(count)))
        async with http.post(
            f"{base}/sessions/{session_id}", headers=auth, json={"message": "bench"}
        ) as response:
            response.raise_for_status()
        return time.perf_counter() - start


def create_repo(server: LocalServer, name: str) -> str:
    response = httpx.post(
        f"{server.endpoint_url}/api/v1/organizations/{server.org}/repositories",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={"name": name},
    )
    response.raise_for_status()
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (fairness)")
    args = parser.parse_args()
    count, concurrency, rounds = args.count, args.concurrency, args.rounds

    runs: dict[str, Callable[[LocalServer, str, int], float]] = {
        "lamina": lambda srv, name, n: asyncio.run(
            run_lamina(srv, name, n, concurrency, extensions=True)
        ),
        "lamina 3-req": lambda srv, name, n: asyncio.run(
            run_lamina(srv, name, n, concurrency, extensions=False)
        ),
        "tilde-sdk": lambda srv, name, n: run_tilde(srv, name, n, concurrency),
        "raw aiohttp": lambda srv, name, n: asyncio.run(run_raw(srv, name, n, concurrency)),
    }
    labels = list(runs)
    seconds: dict[str, list[float]] = {label: [] for label in labels}
    cpu = dict.fromkeys(labels, 0.0)
    with LocalServer() as server:
        repos = itertools.count()

        def attempt(label: str, share: int) -> tuple[float, float]:
            """(wall, CPU) seconds of one run on a fresh repository."""
            repo = create_repo(server, f"bench-{next(repos)}-{label.replace(' ', '-')}")
            cpu_start = time.process_time()
            elapsed = runs[label](server, repo, share)
            return elapsed, time.process_time() - cpu_start

        def run(label: str, share: int) -> tuple[float, float]:
            try:
                return attempt(label, share)
            except Exception as exc:  # reported, and run again once
                print(f"  ({label} failed, run again: {type(exc).__name__}: {exc})")
                return attempt(label, share)

        for label in labels:  # warm-up: no contender pays for first-request costs
            run(label, 50)
        # the count is split into rounds that rotate the order, so a drift in the server's
        # (or the machine's) speed does not favour whoever runs first
        for round_index in range(rounds):
            share = count // rounds + (1 if round_index < count % rounds else 0)
            order = labels[round_index % len(labels) :] + labels[: round_index % len(labels)]
            for label in order:
                elapsed, used = run(label, share)
                seconds[label].append(elapsed)
                cpu[label] += used

    print(
        f"{count} x {SIZE // 1024} KiB puts, {concurrency} in flight, {rounds} rounds"
        f" (load average {os.getloadavg()[0]:.2f})"
    )
    total = {label: sum(times) for label, times in seconds.items()}
    for label in labels:
        print(
            f"  {label:<12} {total[label]:7.2f} s  {count / total[label]:6.0f} puts/s"
            f"  client CPU {cpu[label] / count * 1e3:5.2f} ms/put"
        )
    for ours, peer, goal in (
        ("lamina", "tilde-sdk", 6.0),
        ("lamina", "raw aiohttp", 1.0),
        ("lamina 3-req", "raw aiohttp", 0.9),
    ):
        ratio = total[peer] / total[ours]
        per_round = " ".join(
            f"{theirs / mine:.2f}"
            for mine, theirs in zip(seconds[ours], seconds[peer], strict=True)
        )
        print(
            f"{ours} vs {peer + ':':<12} {ratio:.2f}x  (goal >= {goal}x; per round: {per_round})"
            f" {_verdict(ratio >= goal)}"
        )
    cpu_ratio = cpu["lamina 3-req"] / cpu["raw aiohttp"]
    print(
        f"lamina 3-req vs raw aiohttp client CPU per put: {cpu_ratio:.2f}x (goal <= 1.2x)"
        f" {_verdict(cpu_ratio <= 1.2)}"
    )


def _verdict(met: bool) -> str:
    return "OK" if met else "MISSED"


if __name__ == "__main__":
    main()
