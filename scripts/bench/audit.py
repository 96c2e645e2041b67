"""What the audit log costs: 4 KiB puts plus their commit with the audit log on vs off.

Two reference servers, started the same way (as ``put_throughput.py`` starts one: uvicorn in a
subprocess on loopback, a scratch data directory under the current directory) but one with
``--no-audit-log``, run the full upload protocol (upload URL, bytes, finalize; then one commit
of the session) with ``--concurrency`` puts in flight, warmed up once, then in alternating
rounds. With the log on, every finalize and the commit append a hash-chained entry in their
own transaction.

Prints each side's median objects/s and server CPU per object, and the on/off ratio (goal
>= 0.9x), the median of the rounds' ratios.

    python scripts/bench/audit.py [--objects 2000] [--size 4096] [--concurrency 32]
                                  [--rounds 5] [--warmup 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from put_throughput import Server, lamina_bench, measure, report, start_lamina


async def compare(on: Server, off: Server, args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        benches = {
            server.name: await lamina_bench([server], args.size, args.concurrency, stack)
            for server in (on, off)
        }
        for server in (on, off):
            await benches[server.name]("warm", args.warmup)
        for round_ in range(args.rounds):
            order = (on, off) if round_ % 2 == 0 else (off, on)
            for server in order:
                await measure(server, benches[server.name], f"r{round_}", args.objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="audit-bench-", dir=Path.cwd()) as scratch:
        on = start_lamina(Path(scratch) / "on", "audit log on")
        try:
            off = start_lamina(Path(scratch) / "off", "audit log off", ("--no-audit-log",))
            try:
                asyncio.run(compare(on, off, args))
            finally:
                off.stop()
        finally:
            on.stop()

    print(
        f"{args.objects} x {args.size} B puts + 1 commit, {args.concurrency} in flight "
        f"(aiohttp, loopback), {args.rounds} alternating rounds, medians"
    )
    report(on, off, "on/off", 0.9)


if __name__ == "__main__":
    main()
