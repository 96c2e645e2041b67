"""Durable small-object puts: Lamina's full upload protocol vs a bare fsync-per-PUT app.

Both servers run under uvicorn with the same settings (uvloop, httptools, no access log,
warning log level) in their own subprocess on loopback, started once, warmed up with one
unmeasured round each (a first round on an idle machine meets cold caches and an idle disk, which
favour neither app evenly), then measured in alternating rounds on the same machine. The client
is aiohttp with a fixed number of puts in flight.

- Lamina: per object ``PUT /object`` (upload URL + token; ``in_place`` as the SDK asks),
  ``PUT <upload_url>`` (the bytes),
  ``POST /object/finalize`` (durable and staged when it answers), all in one session, then one
  commit — included in the time.
- Lamina one request: per object ``POST /object/upload`` (the one-request put the server
  advertises, docs/uploads.md: durable and staged when it answers), in one session, then one
  commit — included in the time. The same server process as the full protocol's.
- Bare: a Starlette app whose one route writes the body to a new file and fsyncs it.

Prints, per app, the median objects/s and the server process's CPU time per object (user +
system, from ``/proc/<pid>/stat``: robust to other load on the machine, which the wall clock is
not; the client shares the machine's cores), and the objects/s ratios, the median of the
rounds' ratios (goals: full protocol >= 0.5, one request >= 0.9). Both
servers keep their files in a scratch folder under the current directory, so that fsync meets
a real disk rather than a tmpfs. The bare app's fsync per file makes its rounds follow the
disk (from 1,900 to 4,200 objects/s within one run here), so a run takes 7 rounds: a median of
5 moved with a single one.

    python scripts/bench/put_throughput.py [--objects 2000] [--size 4096] [--concurrency 32]
                                           [--rounds 7] [--warmup 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

UVICORN_OPTIONS = {"access_log": False, "log_level": "warning", "server_header": False}
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


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
    uvicorn.run(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS)  # type: ignore[arg-type]


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    api_key: str = ""
    rates: list[float] = field(default_factory=list)
    cpu_per_object: list[float] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_bare(folder: Path) -> Server:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port), str(folder)])
    server = Server("bare Starlette + fsync", process, f"http://127.0.0.1:{port}")
    _wait_for(server)
    return server


def start_lamina(
    data_dir: Path, name: str = "lamina full protocol", options: tuple[str, ...] = ()
) -> Server:
    port = _free_port()
    config_path = data_dir / "config.toml"
    command = [sys.executable, "-m", "lamina_server", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--config-path", str(config_path)]
    command += ["--log-level", str(UVICORN_OPTIONS["log_level"]), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    server = Server(name, process, f"http://127.0.0.1:{port}")
    _wait_for(server)
    if "--no-write-config" not in options:
        server.api_key = tomllib.loads(config_path.read_text())["api_key"]
    return server


def _wait_for(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited during startup")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


# --- the clients ----------------------------------------------------------------------------


async def _run(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Runs ``one(i)`` for i in range(count) with ``concurrency`` in flight."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


Bench = Callable[[str, int], Awaitable[None]]


def _client(stack: AsyncExitStack, concurrency: int, **options: Any) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector, **options)
    stack.push_async_callback(session.close)
    return session


async def bare_bench(server: Server, size: int, concurrency: int, stack: AsyncExitStack) -> Bench:
    """``bench(label, count)``: ``count`` bare PUTs."""
    url = f"{server.url}/put"
    body = os.urandom(size)
    http = _client(stack, concurrency)

    async def one(_: int) -> None:
        async with http.put(url, data=body) as response:
            assert response.status == 200, await response.text()

    async def bench(label: str, count: int) -> None:
        await _run(count, concurrency, one)

    return bench


async def lamina_bench(
    servers: list[Server], size: int, concurrency: int, stack: AsyncExitStack, repo: str = "bench"
) -> Bench:
    """``bench(label, count)``: one session, ``count`` full-protocol puts, one commit. With
    several servers (replicas of one deployment) the puts' requests go round-robin over
    them, each put's three to the same one, as a load balancer would spread them."""
    body = os.urandom(size)
    key = servers[0].api_key
    http = _client(stack, concurrency, headers={"Authorization": f"Bearer {key}"})
    # The presigned URL carries its own credential: no Authorization header.
    blob_http = _client(stack, concurrency)
    org = "local"
    apis = [f"{server.url}/api/v1" for server in servers]
    async with http.post(f"{apis[0]}/organizations/{org}/repositories", json={"name": repo}) as r:
        assert r.status == 201, await r.text()
    repos = [f"{api}/organizations/{org}/repositories/{repo}" for api in apis]

    async def bench(label: str, count: int) -> None:
        async with http.post(f"{repos[0]}/sessions") as response:
            assert response.status == 201, await response.text()
            session_id: str = (await response.json())["session_id"]

        async def one(index: int) -> None:
            base = repos[index % len(repos)]
            params = {"session_id": session_id, "path": f"{label}/{index:06d}"}
            # As the SDK does: an in-place upload where the store offers one (S3).
            started = {**params, "in_place": "true"}
            async with http.put(f"{base}/object", params=started) as response:
                assert response.status == 200, await response.text()
                target = await response.json()
            headers = target.get("upload_headers") or {}
            async with blob_http.put(target["upload_url"], data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                etag = response.headers["ETag"].strip('"')
            finalize = {
                "upload_token": target["upload_token"],
                "checksum": etag,
                "size_bytes": size,
            }
            async with http.post(
                f"{base}/object/finalize", params=params, json=finalize
            ) as response:
                assert response.status == 201, await response.text()
                await response.read()  # an unread body would cost aiohttp the connection

        await _run(count, concurrency, one)
        async with http.post(f"{repos[0]}/sessions/{session_id}", json={"message": label}) as r:
            assert r.status == 200, await r.text()

    return bench


async def one_request_bench(
    server: Server, size: int, concurrency: int, stack: AsyncExitStack, repo: str = "bench-one"
) -> Bench:
    """``bench(label, count)``: one session, ``count`` one-request puts, one commit."""
    body = os.urandom(size)
    http = _client(stack, concurrency, headers={"Authorization": f"Bearer {server.api_key}"})
    base = f"{server.url}/api/v1/organizations/local/repositories/{repo}"
    async with http.post(
        f"{server.url}/api/v1/organizations/local/repositories", json={"name": repo}
    ) as r:
        assert r.status == 201, await r.text()

    async def bench(label: str, count: int) -> None:
        async with http.post(f"{base}/sessions") as response:
            assert response.status == 201, await response.text()
            session_id: str = (await response.json())["session_id"]

        async def one(index: int) -> None:
            params = {"session_id": session_id, "path": f"{label}/{index:06d}"}
            async with http.post(f"{base}/object/upload", params=params, data=body) as response:
                assert response.status == 201, await response.text()
                await response.read()

        await _run(count, concurrency, one)
        async with http.post(f"{base}/sessions/{session_id}", json={"message": label}) as r:
            assert r.status == 200, await r.text()

    return bench


async def measure(server: Server, bench: Bench, label: str, count: int) -> None:
    cpu = _cpu_seconds(server.process.pid)
    started = time.perf_counter()
    await bench(label, count)
    seconds = time.perf_counter() - started
    server.rates.append(count / seconds)
    server.cpu_per_object.append((_cpu_seconds(server.process.pid) - cpu) / count * 1e6)


async def compare(bare: Server, lamina: Server, one: Server, args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        benches = {
            bare.name: await bare_bench(bare, args.size, args.concurrency, stack),
            lamina.name: await lamina_bench([lamina], args.size, args.concurrency, stack),
            one.name: await one_request_bench(one, args.size, args.concurrency, stack),
        }
        servers = [bare, lamina, one]
        for server in servers:
            await benches[server.name]("warm", args.warmup)
        for round_ in range(args.rounds):
            order = servers[round_ % 3 :] + servers[: round_ % 3]
            for server in order:
                await measure(server, benches[server.name], f"r{round_}", args.objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--warmup", type=int, default=2000, help="unmeasured puts per app before the rounds"
    )
    parser.add_argument(
        "--backend",
        choices=("local", "postgres+s3"),
        default="local",
        help="local: the embedded defaults vs a bare app; postgres+s3: scaled out (below)",
    )
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return
    if args.backend == "postgres+s3":
        from put_scaled_out import run_scaled_out

        run_scaled_out(args)
        return

    with tempfile.TemporaryDirectory(prefix="put-bench-", dir=Path.cwd()) as scratch:
        (Path(scratch) / "bare").mkdir()
        bare = start_bare(Path(scratch) / "bare")
        try:
            lamina = start_lamina(Path(scratch) / "lamina")
            # The one-request put, served by the same process.
            one = Server("lamina one request", lamina.process, lamina.url, lamina.api_key)
            try:
                asyncio.run(compare(bare, lamina, one, args))
            finally:
                lamina.stop()
        finally:
            bare.stop()

    print(
        f"{args.objects} x {args.size} B durable puts, {args.concurrency} in flight "
        f"(aiohttp, loopback), {args.rounds} rotating rounds, medians"
        f" (load average {os.getloadavg()[0]:.2f})"
    )
    report(lamina, bare, "lamina/bare", 0.5)
    report(one, bare, "one request/bare", 0.9)


def report(side: Server, base: Server, label: str, goal: float) -> None:
    """Each server's median objects/s (and its rounds) and CPU per object; then the median of
    the rounds' ratios of ``side`` to ``base`` against ``goal``, and the CPU ratio."""
    width = max(len(side.name), len(base.name), len(f"ratio {label}"))
    for server in (base, side):
        rates = " ".join(f"{rate:.0f}" for rate in server.rates)
        print(
            f"  {server.name:<{width}}: {statistics.median(server.rates):6.0f} objects/s "
            f"({rates})  server CPU {statistics.median(server.cpu_per_object):5.0f} us/object"
        )
    ratios = [a / b for a, b in zip(side.rates, base.rates, strict=True)]
    cpu_ratio = statistics.median(side.cpu_per_object) / statistics.median(base.cpu_per_object)
    print(
        f"  {f'ratio {label}':<{width}}: {statistics.median(ratios):.2f}x objects/s "
        f"(rounds: {' '.join(f'{r:.2f}' for r in ratios)}; goal >= {goal:.2f}); "
        f"server CPU per object {cpu_ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
