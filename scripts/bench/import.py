"""Importing objects from S3: a Lamina import job vs an ``aws s3 sync``-style copy.

One SeaweedFS (``weed server -s3``, as the tests start it) holds ``--count`` objects of
``--size-kib`` KiB. Both sides copy all of them, ``OBJECT_CONCURRENCY`` (16) objects at a time:

- Lamina: a reference server started by this script (SQLite, the local blob store) runs an
  import job from a connector; timed from the request to the job ``completed`` (its objects
  streamed into the blob store, staged and committed as one commit);
- the peer: ``obstore`` lists the bucket and streams each object to a file on local disk, as
  ``aws s3 sync s3://bucket dir`` does (no fsync: neither does aws).

The rounds alternate who goes first; the ratio is of median times (peer time / Lamina time, so
1.0 is as fast as the peer).

    .venv/bin/python scripts/bench/import.py [--count 2000] [--size-kib 1024] [--rounds 3]

Goal: >= 0.8x.
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
from pathlib import Path

import httpx
import obstore
from obstore.store import S3Store

from lamina.testing import LocalServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.server import s3_source
from tests.server.seaweedfs import SeaweedFS, start

CONCURRENCY = 16  # lamina_server.imports.runner.OBJECT_CONCURRENCY
GOAL = 0.8


async def peer_copy(store: S3Store, target: Path) -> int:
    """``aws s3 sync``: list, then stream every object to a file, CONCURRENCY at a time."""
    limit = asyncio.Semaphore(CONCURRENCY)
    keys = [meta["path"] async for batch in obstore.list(store) for meta in batch]

    async def one(key: str) -> None:
        async with limit:
            path = target / key
            path.parent.mkdir(parents=True, exist_ok=True)
            result = await obstore.get_async(store, key)
            with path.open("wb") as out:
                async for chunk in result.stream(min_chunk_size=1024 * 1024):
                    out.write(chunk)

    await asyncio.gather(*(one(key) for key in keys))
    return len(keys)


def lamina_import(server: LocalServer, weed: SeaweedFS, bucket: str, round_: int) -> float:
    with httpx.Client(
        base_url=f"{server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=120.0,
    ) as api:
        o = f"/organizations/{server.org}"
        repo = f"{o}/repositories/import-{round_}"
        assert api.post(f"{o}/repositories", json={"name": f"import-{round_}"}).is_success
        connector = api.post(
            f"{o}/connectors",
            json={
                "name": f"bench-{round_}",
                "type": "s3",
                "source_uri": f"s3://{bucket}/",
                "config": s3_source.config(weed),
            },
        ).json()["id"]
        assert api.post(f"{repo}/connectors", json={"connector_id": connector}).is_success
        begin = time.perf_counter()
        job_id = api.post(
            f"{repo}/import", json={"connector_id": connector, "destination_path": "in/"}
        ).json()["job_id"]
        while True:
            job = api.get(f"{repo}/import/{job_id}").json()
            if job["status"] not in ("pending", "running"):
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - begin
        if job["status"] != "completed":
            raise SystemExit(f"the import failed: {job['error']}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-import-") as scratch:
        root = Path(scratch)
        weed = start(root / "weed")
        try:
            bucket = "bench-source"
            s3_source.create_bucket(weed, bucket)
            size = args.size_kib * 1024
            print(f"putting {args.count} x {args.size_kib} KiB into SeaweedFS...", flush=True)
            block = os.urandom(size)
            s3_source.put_objects(
                weed,
                bucket,
                {
                    f"data/{i:06d}.bin": block[i % 997 :] + block[: i % 997]
                    for i in range(args.count)
                },
                concurrency=32,
            )
            store = s3_source.store(weed, bucket)
            with LocalServer(data_dir=root / "server") as server:
                peer_times, lamina_times = [], []
                for round_ in range(args.rounds):
                    order = ("peer", "lamina") if round_ % 2 == 0 else ("lamina", "peer")
                    for who in order:
                        if who == "peer":
                            target = root / f"peer-{round_}"
                            begin = time.perf_counter()
                            copied = asyncio.run(peer_copy(store, target))
                            peer_times.append(time.perf_counter() - begin)
                            assert copied == args.count
                            shutil.rmtree(target)
                        else:
                            lamina_times.append(lamina_import(server, weed, bucket, round_))
                    print(
                        f"round {round_ + 1}: peer {peer_times[-1]:.2f} s, "
                        f"lamina {lamina_times[-1]:.2f} s",
                        flush=True,
                    )
        finally:
            weed.stop()
    peer, lamina = statistics.median(peer_times), statistics.median(lamina_times)
    mib = args.count * args.size_kib / 1024
    ratio = peer / lamina
    print(f"peer (obstore -> local disk): {peer:.2f} s ({mib / peer:.0f} MiB/s)")
    print(f"lamina import job:            {lamina:.2f} s ({mib / lamina:.0f} MiB/s)")
    print(
        f"ratio (peer time / lamina time): {ratio:.2f}x (goal >= {GOAL}x) {'OK' if ratio >= GOAL else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
