"""Small-request throughput and per-call latency of the async HTTP paths, against one server.

Starts a minimal ASGI app (uvicorn, httptools) in a subprocess on a free loopback port, then
measures, in this one process:

- req/s with 64 concurrent tasks, for: httpx's default async transport, httpx over
  ``httpx_aiohttp.AiohttpTransport``, ``lamina.AsyncClient.request()`` (its default transport),
  and raw aiohttp;
- microseconds per sequential call for the same four.

Each figure is the best of a few rounds (the machine is shared); ratios are against raw aiohttp.
Usage: ``python scripts/bench/transports.py [--requests N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

import lamina

CONCURRENCY = 64
SERVER = """
import sys, uvicorn

BODY = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, http="httptools", lifespan="off")
"""

Call = Callable[[], Awaitable[object]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the benchmark server did not start")


async def throughput(call: Call, requests: int) -> float:
    """Requests per second with CONCURRENCY tasks each sending requests back to back."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return requests / (time.perf_counter() - started)


async def latency(call: Call, requests: int) -> float:
    """Microseconds per call, one call at a time."""
    started = time.perf_counter()
    for _ in range(requests):
        await call()
    return (time.perf_counter() - started) / requests * 1e6


async def measure(url: str, endpoint: str, requests: int, rounds: int) -> None:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session,
        httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as httpx_default,
        httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=CONCURRENCY))
        ) as httpx_aiohttp,
        lamina.AsyncClient(api_key="bench", endpoint_url=endpoint) as client,
    ):

        async def raw_aiohttp() -> bytes:
            async with session.get(url) as response:
                return await response.read()

        calls: dict[str, Call] = {
            "httpx default": lambda: httpx_default.get(url),
            "httpx + AiohttpTransport": lambda: httpx_aiohttp.get(url),
            "lamina AsyncClient.request": lambda: client.request("GET", url),
            "raw aiohttp": raw_aiohttp,
        }
        best_rate = dict.fromkeys(calls, 0.0)
        best_latency = dict.fromkeys(calls, float("inf"))
        for call in calls.values():  # warm up: open the pools
            await throughput(call, CONCURRENCY * 4)
        for _ in range(rounds):
            for name, call in calls.items():
                best_rate[name] = max(best_rate[name], await throughput(call, requests))
                best_latency[name] = min(best_latency[name], await latency(call, requests // 4))

    peer_rate, peer_latency = best_rate["raw aiohttp"], best_latency["raw aiohttp"]
    print(f"{'client':28} {'req/s @64':>10} {'vs aiohttp':>10} {'us/call':>9} {'vs aiohttp':>10}")
    for name in calls:
        print(
            f"{name:28} {best_rate[name]:10.0f} {best_rate[name] / peer_rate:9.2f}x "
            f"{best_latency[name]:9.1f} {best_latency[name] / peer_latency:9.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        asyncio.run(measure(f"{endpoint}/small", endpoint, args.requests, args.rounds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
