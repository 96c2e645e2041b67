"""Per-call overhead: sequential ``head()`` through Lamina's AsyncClient vs raw aiohttp.

Both send the same request, ``HEAD .../object?path=...`` with the API key, one at a time, to
one reference server started by this script; the difference is what the SDK adds per call
(building the request, the retry loop, error mapping, parsing the headers into a model).

The calls run in ``--rounds`` blocks that alternate who goes first, after a warm-up of both;
each side's time is the sum over its blocks, and its client CPU time (this process only: the
server runs in its own) is reported per call. On a shared machine the server's latency
dominates the wall clock, so the CPU time per call is the steadier view of the overhead.

    .venv/bin/python scripts/bench/call_overhead.py [--count 2000] [--rounds 8]

Goals: Lamina's time <= 1.05x raw aiohttp's, and its client CPU per call <= 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

import lamina
from lamina.testing import LocalServer

PATH = "bench/object.txt"


async def seed(client: lamina.AsyncClient, org: str) -> lamina.AsyncRepository:
    repo = await client.organization(org).repositories.create("overhead")
    async with repo.session() as session:
        await session.objects.put(PATH, b"hello overhead", metadata={"kind": "bench"})
        await session.commit("seed")
    return repo


async def timed(calls: Callable[[int], Awaitable[None]], count: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``count`` sequential calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    await calls(count)
    return time.perf_counter() - wall, time.process_time() - cpu


async def bench(server: LocalServer, count: int, rounds: int) -> dict[str, tuple[float, float]]:
    url = f"{server.endpoint_url}/api/v1/organizations/{server.org}/repositories/overhead/object"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with (
        lamina.AsyncClient(api_key=server.api_key, endpoint_url=server.endpoint_url) as client,
        aiohttp.ClientSession() as http,
    ):
        repo = await seed(client, server.org)

        async def lamina_calls(n: int) -> None:
            for _ in range(n):
                await repo.objects.head(PATH)

        async def raw_calls(n: int) -> None:
            for _ in range(n):
                async with http.head(url, params={"path": PATH}, headers=headers) as response:
                    response.raise_for_status()
                    _ = response.headers["etag"]

        sides = {"lamina": lamina_calls, "raw aiohttp": raw_calls}
        for calls in sides.values():  # warm-up: connections open, code paths hot
            await calls(100)
        totals = dict.fromkeys(sides, (0.0, 0.0))
        for index in range(rounds):
            share = count // rounds + (1 if index < count % rounds else 0)
            order = list(sides) if index % 2 == 0 else list(reversed(sides))
            for label in order:
                wall, cpu = await timed(sides[label], share)
                totals[label] = (totals[label][0] + wall, totals[label][1] + cpu)
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with LocalServer() as server:
        totals = asyncio.run(bench(server, args.count, args.rounds))
    print(f"{args.count} sequential HEAD .../object, {args.rounds} alternating blocks")
    for label, (wall, cpu) in totals.items():
        print(
            f"  {label:12} {wall:6.2f} s  {wall / args.count * 1e3:6.3f} ms/call"
            f"  client CPU {cpu / args.count * 1e3:6.3f} ms/call"
        )
    ratio = totals["lamina"][0] / totals["raw aiohttp"][0]
    cpu_ratio = totals["lamina"][1] / totals["raw aiohttp"][1]
    verdict = "OK" if ratio <= 1.05 else "MISSED"
    print(f"lamina / raw aiohttp time: {ratio:.2f}x  (goal <= 1.05x) {verdict}")
    verdict = "OK" if cpu_ratio <= 1.2 else "MISSED"
    print(f"lamina / raw aiohttp client CPU per call: {cpu_ratio:.2f}x  (goal <= 1.2x) {verdict}")


if __name__ == "__main__":
    main()
