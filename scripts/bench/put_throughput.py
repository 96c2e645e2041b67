"""Durable small-object puts: Lamina's full upload protocol vs a bare fsync-per-PUT app.

Both servers run under uvicorn (same defaults: uvloop, httptools, no access log) in their own
subprocess on loopback, one after the other on the same machine. The client is aiohttp with a
fixed number of puts in flight.

- Lamina: per object ``PUT /object`` (upload URL + token), ``PUT <upload_url>`` (bytes, durable),
  ``POST /object/finalize`` (stage), all in one session, then one commit — included in the time.
- Bare: a Starlette app whose one route writes the body to a new file and fsyncs it.

Prints objects/s and HTTP requests/s for both and the objects/s ratio (goal: >= 0.5). Both
servers keep their files in a scratch folder under the current directory, so that fsync meets
a real disk rather than a tmpfs.

    python scripts/bench/put_throughput.py [--objects 2000] [--size 4096] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

from lamina.testing import LocalServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the bare app (run in a subprocess: ``put_throughput.py --serve-bare PORT DIR``) --------


def serve_bare(port: int, folder: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def store(data: bytes) -> None:
        fd = os.open(folder / uuid.uuid4().hex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def put(request: Request) -> Response:
        data = await request.body()
        await asyncio.to_thread(store, data)
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/put", put, methods=["PUT"]), Route("/healthz", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


# --- the client -----------------------------------------------------------------------------


async def _run(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Runs ``one(i)`` for i in range(count) with ``concurrency`` in flight; seconds taken."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench_bare(port: int, count: int, size: int, concurrency: int) -> float:
    url = f"http://127.0.0.1:{port}/put"
    body = os.urandom(size)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(_: int) -> None:
            async with http.put(url, data=body) as response:
                assert response.status == 200, await response.text()

        await _run(min(200, count), concurrency, one)  # warm-up
        return await _run(count, concurrency, one)


async def bench_lamina(server: LocalServer, count: int, size: int, concurrency: int) -> float:
    api = f"{server.endpoint_url}/api/v1"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = os.urandom(size)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency), headers=headers
        ) as http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as blob_http,
    ):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        async with http.post(
            f"{api}/organizations/{server.org}/repositories", json={"name": name}
        ) as response:
            assert response.status == 201, await response.text()
        repo = f"{api}/organizations/{server.org}/repositories/{name}"

        async def open_session() -> str:
            async with http.post(f"{repo}/sessions") as response:
                assert response.status == 201, await response.text()
                session_id: str = (await response.json())["session_id"]
                return session_id

        async def put_all(session_id: str, prefix: str, n: int) -> float:
            async def one(index: int) -> None:
                params = {"session_id": session_id, "path": f"{prefix}/{index:06d}"}
                async with http.put(f"{repo}/object", params=params) as response:
                    assert response.status == 200, await response.text()
                    target = await response.json()
                # the presigned URL carries its own credential: no Authorization header
                async with blob_http.put(target["upload_url"], data=body) as response:
                    assert response.status == 200, await response.text()
                    etag = response.headers["ETag"].strip('"')
                finalize = {
                    "upload_token": target["upload_token"],
                    "checksum": etag,
                    "size_bytes": size,
                }
                async with http.post(
                    f"{repo}/object/finalize", params=params, json=finalize
                ) as response:
                    assert response.status == 201, await response.text()

            return await _run(n, concurrency, one)

        async def commit(session_id: str) -> None:
            async with http.post(
                f"{repo}/sessions/{session_id}", json={"message": "bench"}
            ) as response:
                assert response.status == 200, await response.text()

        warm = await open_session()
        await put_all(warm, "warm", min(200, count))
        await commit(warm)

        session_id = await open_session()
        started = time.perf_counter()
        await put_all(session_id, "data", count)
        await commit(session_id)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return

    with tempfile.TemporaryDirectory(prefix="put-bench-", dir=Path.cwd()) as scratch:
        bare_dir = Path(scratch) / "bare"
        bare_dir.mkdir()
        port = _free_port()
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(port), str(bare_dir)]
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/healthz")
            bare_seconds = asyncio.run(bench_bare(port, args.objects, args.size, args.concurrency))
        finally:
            bare.terminate()
            bare.wait()

        with LocalServer(data_dir=Path(scratch) / "lamina") as server:
            lamina_seconds = asyncio.run(
                bench_lamina(server, args.objects, args.size, args.concurrency)
            )

    n = args.objects
    bare_rate, lamina_rate = n / bare_seconds, n / lamina_seconds
    print(f"{n} x {args.size} B durable puts, {args.concurrency} in flight (aiohttp, loopback)")
    print(f"  bare Starlette + fsync : {bare_rate:8.0f} objects/s  {bare_rate:8.0f} req/s")
    print(
        f"  lamina full protocol   : {lamina_rate:8.0f} objects/s  {3 * n / lamina_seconds:8.0f}"
        " req/s (3 per object, + 1 commit)"
    )
    print(f"  ratio lamina/bare      : {lamina_rate / bare_rate:.2f}x objects/s (goal >= 0.50)")


def _wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


if __name__ == "__main__":
    main()
