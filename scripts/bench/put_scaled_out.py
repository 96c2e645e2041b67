"""``put_throughput.py --backend postgres+s3``: Lamina scaled out, its metadata in a PostgreSQL
and its bytes in a SeaweedFS the script starts (as the tests do: tests/postgres.py,
tests/server/seaweedfs.py), clients uploading straight to SeaweedFS by presigned URLs.

- Lamina's full protocol (upload URL, bytes to SeaweedFS, finalize; one commit per round) vs
  raw ``obstore`` puts of the same objects to the same SeaweedFS at the same concurrency:
  goal >= 0.5x.
- The same protocol spread round-robin over two replicas vs one replica: goal >= 1.6x. Every
  process (the client, PostgreSQL, SeaweedFS, the replicas) shares the machine's cores, so the
  script prints the cores it has and each process's CPU per object: what limits the second
  replica's gain.

Alternating rounds after one unmeasured warm-up round each; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from put_throughput import Bench, Server, _cpu_seconds, _run, lamina_bench, start_lamina

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.postgres import PostgresCluster
from tests.server import seaweedfs

SHARED_KEYS = ("signing.key", "evidence.key", "secrets.key")  # what replicas must agree on


@dataclass
class Side:
    """One contender: its benchmark, the processes whose CPU it costs, its rounds."""

    name: str
    bench: Bench
    pids: dict[str, int]
    rates: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)


async def _measure(side: Side, label: str, count: int) -> None:
    before = {name: _cpu_seconds(pid) for name, pid in side.pids.items()}
    started = time.perf_counter()
    await side.bench(label, count)
    side.rates.append(count / (time.perf_counter() - started))
    for name, pid in side.pids.items():
        used = (_cpu_seconds(pid) - before[name]) / count * 1e6
        side.cpu.setdefault(name, []).append(used)


def obstore_bench(weed: seaweedfs.SeaweedFS, bucket: str, size: int, concurrency: int) -> Bench:
    """``bench(label, count)``: ``count`` raw obstore puts to ``bucket``."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        config={
            "endpoint": weed.endpoint,
            "region": seaweedfs.REGION,
            "access_key_id": seaweedfs.ACCESS_KEY,
            "secret_access_key": seaweedfs.SECRET_KEY,
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True},
    )
    body = os.urandom(size)

    async def bench(label: str, count: int) -> None:
        async def one(index: int) -> None:
            await obstore.put_async(store, f"{label}/{index:06d}", body)

        await _run(count, concurrency, one)

    return bench


def start_replica(first: Server, first_dir: Path, root: Path, options: tuple[str, ...]) -> Server:
    """A second server on the first one's database and bucket, with its shared keys."""
    root.mkdir(mode=0o700)
    for name in SHARED_KEYS:
        if (first_dir / name).exists():
            shutil.copy2(first_dir / name, root / name)
    second = start_lamina(root, "second replica", (*options, "--no-write-config"))
    second.api_key = first.api_key
    return second


async def _compare(sides: list[Side], args: argparse.Namespace) -> None:
    for side in sides:
        await side.bench("warm", args.warmup)
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else reversed(sides):
            await _measure(side, f"r{round_}", args.objects)


def _report(side: Side, base: Side, goal: float) -> None:
    for one in (base, side):
        cpu = ", ".join(
            f"{name} {statistics.median(values):.0f}" for name, values in one.cpu.items()
        )
        rates = " ".join(f"{rate:.0f}" for rate in one.rates)
        print(
            f"  {one.name:<28}: {statistics.median(one.rates):6.0f} objects/s ({rates}); "
            f"CPU us/object: {cpu}"
        )
    ratios = [a / b for a, b in zip(side.rates, base.rates, strict=True)]
    print(
        f"  {'ratio':<28}: {statistics.median(ratios):.2f}x "
        f"(rounds: {' '.join(f'{r:.2f}' for r in ratios)}; goal >= {goal:.2f})"
    )


def run_scaled_out(args: argparse.Namespace) -> None:
    with (
        ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="put-bench-", dir=Path.cwd()) as scratch,
    ):
        root = Path(scratch)
        cluster = PostgresCluster().start()
        stack.callback(cluster.stop)
        weed = seaweedfs.start(root / "weed")
        stack.callback(weed.stop)
        for bucket in ("raw", "lamina"):
            weed.create_bucket(bucket)
        options = (
            "--database-url",
            cluster.database_url(),
            "--blob-store",
            weed.url("lamina", "data"),
        )
        first = start_lamina(root / "first", "one replica", options)
        stack.callback(first.stop)
        second = start_replica(first, root / "first", root / "second", options)
        stack.callback(second.stop)
        asyncio.run(_run_sides(weed, first, second, args))


async def _run_sides(
    weed: seaweedfs.SeaweedFS, first: Server, second: Server, args: argparse.Namespace
) -> None:
    size, concurrency = args.size, args.concurrency
    weed_pid = weed.process.pid
    async with AsyncExitStack() as stack:
        raw = Side(
            "raw obstore -> SeaweedFS",
            obstore_bench(weed, "raw", size, concurrency),
            {"weed": weed_pid},
        )
        one = Side(
            "lamina, one replica",
            await lamina_bench([first], size, concurrency, stack, "one"),
            {"replica 1": first.process.pid, "weed": weed_pid},
        )
        two = Side(
            "lamina, two replicas",
            await lamina_bench([first, second], size, concurrency, stack, "two"),
            {"replica 1": first.process.pid, "replica 2": second.process.pid, "weed": weed_pid},
        )
        await _compare([raw, one, two], args)
    print(
        f"{args.objects} x {size} B puts, {concurrency} in flight (aiohttp / obstore, "
        f"loopback), PostgreSQL + SeaweedFS, {args.rounds} alternating rounds, medians; "
        f"{os.cpu_count()} cores shared by every process"
    )
    print("Lamina (one replica) vs raw obstore:")
    _report(one, raw, 0.5)
    print("two replicas vs one:")
    _report(two, one, 1.6)
