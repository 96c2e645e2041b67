"""Sandboxes against their bare peers, in one run, printing ratios.

1. ``sh.run("true")`` (one ``/exec`` websocket) vs spawning ``true`` with bare ``bwrap``
   (goal <= 2.0x); create -> running of a service sandbox (goal p50 <= 50 ms).
2. ``head -c 1G /dev/zero`` streamed through ``/exec`` vs the same command piped locally
   (goal >= 0.5x), and this client's peak RSS (goal < 100 MiB).
3. A repository of 100,000 objects vs one of 1,000, the sandbox mounting all of it:
   create -> running (the first start at a commit, which builds the shared checkout, reported
   apart) and capture + commit of 10 changed files (goal <= 2.0x for both).

The repositories are seeded through the engine (``VersionStore.stage_put_many``, all objects
sharing one small blob) while the server is stopped, then served by a real ``lamina_server``.

    PYTHONPATH=src python scripts/bench/sandbox.py [--stream-mib 1024] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lamina
from lamina.testing import LocalServer
from lamina_server.principals import Committer
from lamina_server.storage.blobs import LocalBlobStore
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.versioning import Entry, VersionStore

BARE_BWRAP = [
    "bwrap",
    "--unshare-all",
    "--unshare-user",
    "--uid",
    "1000",
    "--gid",
    "1000",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--clearenv",
    "--",
    "/usr/bin/true",
]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def p50(values: list[float]) -> float:
    return statistics.median(values)


def seed(data_dir: Path, repository_id: str, count: int) -> None:
    """``count`` objects in one commit, through the engine, sharing one blob."""

    async def run() -> None:
        db = Database(sqlite_url(data_dir))
        store = VersionStore(db)
        blobs = LocalBlobStore(data_dir / "blobs")

        async def body():  # type: ignore[no-untyped-def]
            yield b"x" * 100

        address = blobs.new_address()
        info = await blobs.write(address, body())
        stored = await blobs.claim(address)
        who = Committer("user", "bench", "bench")
        session = await store.create_session(repository_id, created_by=who)
        entries = [
            (
                f"data/{i // 1000:04d}/{i:07d}.txt",
                Entry(stored, info.size, info.etag, "text/plain", utcnow(), {}),
            )
            for i in range(count)
        ]
        for start in range(0, count, 50_000):
            await store.stage_put_many(repository_id, session.id, entries[start : start + 50_000])
        await store.commit_session(
            repository_id, session.id, message=f"{count} objects", metadata={}, committer=who
        )
        await db.dispose()

    asyncio.run(run())


def exec_round_trips(repo: lamina.Repository, rounds: int) -> tuple[float, float]:
    bare = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(BARE_BWRAP, check=True)
        bare.append(time.perf_counter() - started)
    ours = []
    with repo.shell() as sh:
        sh.run("true", check=True)  # warm
        for _ in range(rounds):
            started = time.perf_counter()
            sh.run("true", check=True)
            ours.append(time.perf_counter() - started)
    return p50(ours), p50(bare)


def create_to_running(repo: lamina.Repository, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        sandbox = repo.sandboxes.create(mode="service")
        sandbox.wait(60, until="running")
        times.append(time.perf_counter() - started)
        sandbox.cancel()
    return times


def streaming(repo: lamina.Repository, mib: int) -> tuple[float, float]:
    command = f"head -c {mib}M /dev/zero"
    started = time.perf_counter()
    local = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE)
    assert local.stdout is not None
    total = 0
    while chunk := local.stdout.read1(1 << 20):
        total += len(chunk)
    local.wait()
    local_rate = total / (time.perf_counter() - started)
    with repo.shell() as sh:
        started = time.perf_counter()
        received = 0
        with sh.process(command, stdin=None) as proc:
            for chunk in proc.stdout:
                received += len(chunk)
            assert proc.wait() == 0
        ours_rate = received / (time.perf_counter() - started)
    assert received == total == mib * 1024 * 1024, (received, total)
    return ours_rate, local_rate


def at_scale(repo: lamina.Repository, rounds: int) -> tuple[float, float, float]:
    """p50s of: the first start at a commit (which builds the shared checkout), a warm
    create -> running, and capture + commit of 10 changed files. Each round commits, so the
    next one starts at a new commit."""
    colds, warms, lands = [], [], []
    for round_ in range(rounds):
        started = time.perf_counter()
        cold = repo.sandboxes.create(mode="service")
        cold.wait(600, until="running")
        colds.append(time.perf_counter() - started)
        started = time.perf_counter()
        sandbox = repo.sandboxes.create(mode="service")
        sandbox.wait(600, until="running")
        warms.append(time.perf_counter() - started)
        cold.cancel()
        sandbox.exec(
            f"for i in 0 1 2 3 4 5 6 7 8 9; do echo {round_} > /sandbox/data/0000/new-$i.txt; done",
            check=True,
        )
        started = time.perf_counter()
        sandbox.finish()
        status = sandbox.wait(600)
        assert status.is_committed, status
        lands.append(time.perf_counter() - started)
    return p50(colds), p50(warms), p50(lands)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stream-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--scale-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = LocalServer(data_dir=Path(folder) / "data")
        server.start()
        client = lamina.Client(api_key=server.api_key, endpoint_url=server.endpoint_url)
        try:
            ids = {
                name: client.organizations.get(server.org).repositories.create(name).id
                for name in ("bench", "small", "large")
            }
            repo = client.repository(f"{server.org}/bench")
            ours, bare = exec_round_trips(repo, args.rounds)
            print(f'sh.run("true"): {ms(ours)} vs bare bwrap {ms(bare)}: {ours / bare:.2f}x')
            print("  (goal <= 2.0x)")
            starts = create_to_running(repo, args.rounds)
            print(
                f"create -> running (service): p50 {ms(p50(starts))}, "
                f"p90 {ms(sorted(starts)[int(len(starts) * 0.9)])} (goal p50 <= 50 ms)"
            )
            ours_rate, local_rate = streaming(repo, args.stream_mib)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"/exec stream of {args.stream_mib} MiB: {ours_rate / 2**20:.0f} MiB/s vs local "
                f"pipe {local_rate / 2**20:.0f} MiB/s: {ours_rate / local_rate:.2f}x "
                f"(goal >= 0.5x); client peak RSS so far {rss:.0f} MiB (goal < 100 MiB)"
            )
            server.stop()
            # Seeded in a child process, so that this process's RSS stays the client's own.
            for name, count in (("small", 1_000), ("large", 100_000)):
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--seed",
                        str(server.data_dir),
                        ids[name],
                        str(count),
                    ],
                    check=True,
                )
            server.start()
            client.close()
            client = lamina.Client(api_key=server.api_key, endpoint_url=server.endpoint_url)
            small = at_scale(client.repository(f"{server.org}/small"), args.scale_rounds)
            large = at_scale(client.repository(f"{server.org}/large"), args.scale_rounds)
            print("repository of 100,000 objects vs 1,000 (the whole repository mounted):")
            print(f"  first start at a commit (cold): {ms(large[0])} vs {ms(small[0])}")
            print(
                f"  create -> running: {ms(large[1])} vs {ms(small[1])}: "
                f"{large[1] / small[1]:.2f}x (goal <= 2.0x)"
            )
            print(
                f"  capture + commit of 10 files: {ms(large[2])} vs {ms(small[2])}: "
                f"{large[2] / small[2]:.2f}x (goal <= 2.0x)"
            )
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--seed"]:
        seed(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        main()
