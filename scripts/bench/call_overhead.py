"""Per-call overhead: sequential ``head()`` through Lamina's AsyncClient vs raw aiohttp.

Both send the same request, ``HEAD .../object?path=...`` with the API key, one at a time, to
one reference server started by this script; the difference is what the SDK adds per call
(building the request, the retry loop, error mapping, parsing the headers into a model).

    .venv/bin/python scripts/bench/call_overhead.py [--count 2000]

Goal: Lamina's time <= 1.3x raw aiohttp's.
"""

from __future__ import annotations

import argparse
import asyncio
import time

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


async def run_lamina(repo: lamina.AsyncRepository, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        await repo.objects.head(PATH)
    return time.perf_counter() - start


async def run_raw(server: LocalServer, count: int) -> float:
    url = f"{server.endpoint_url}/api/v1/organizations/{server.org}/repositories/overhead/object"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        for _ in range(count):
            async with http.head(url, params={"path": PATH}, headers=headers) as response:
                response.raise_for_status()
                _ = response.headers["etag"]
        return time.perf_counter() - start


async def bench(server: LocalServer, count: int) -> tuple[float, float]:
    async with lamina.AsyncClient(
        api_key=server.api_key, endpoint_url=server.endpoint_url
    ) as client:
        repo = await seed(client, server.org)
        await run_lamina(repo, 100)  # warm-up
        await run_raw(server, 100)
        # interleave halves so a drift in server speed hits both sides alike
        lamina_s = await run_lamina(repo, count // 2)
        raw_s = await run_raw(server, count // 2)
        raw_s += await run_raw(server, count - count // 2)
        lamina_s += await run_lamina(repo, count - count // 2)
        return lamina_s, raw_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    count = parser.parse_args().count
    with LocalServer() as server:
        lamina_s, raw_s = asyncio.run(bench(server, count))
    print(f"{count} sequential HEAD .../object")
    print(f"  lamina       {lamina_s:6.2f} s  {lamina_s / count * 1e3:6.3f} ms/call")
    print(f"  raw aiohttp  {raw_s:6.2f} s  {raw_s / count * 1e3:6.3f} ms/call")
    ratio = lamina_s / raw_s
    print(
        f"lamina / raw aiohttp time: {ratio:.2f}x  (goal <= 1.3x) {'OK' if ratio <= 1.3 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
