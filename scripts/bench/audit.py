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
import statistics
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from put_throughput import Server, lamina_bench, measure, start_lamina


async def compare(on: Server, off: Server, args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        benches = {
            server.name: await lamina_bench(server, args.size, args.concurrency, stack)
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
    for server in (on, off):
        rates = " ".join(f"{rate:.0f}" for rate in server.rates)
        print(
            f"  {server.name:<14}: {statistics.median(server.rates):6.0f} objects/s ({rates})  "
            f"server CPU {statistics.median(server.cpu_per_object):5.0f} us/object"
        )
    ratios = [a / b for a, b in zip(on.rates, off.rates, strict=True)]
    cpu = statistics.median(on.cpu_per_object) / statistics.median(off.cpu_per_object)
    print(
        f"  ratio on/off  : {statistics.median(ratios):.2f}x objects/s "
        f"(rounds: {' '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.90); "
        f"server CPU per object {cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
