"""The S3 gateway vs SeaweedFS itself, both with boto3: GetObject of a 1 GiB object, and
ListObjectsV2 of 10,000 keys.

One SeaweedFS (``weed server -s3``, as the tests start it) holds both sides: a bucket that
boto3 reads directly (the peer), and the bucket of a reference server's blob store, which the
server's gateway (``<endpoint>/s3``) streams through. The same boto3 client code reads both:

- GetObject: ``get_object`` of the whole object, its body read in 1 MiB chunks to nowhere;
- ListObjectsV2: every key of a prefix of 10,000 objects, in pages of 1,000.

The transfers run in ``--rounds`` rounds that alternate who goes first; ratios are of median
times (the peer's time over the gateway's: 1.0 is as fast as SeaweedFS, higher is faster).

    .venv/bin/python scripts/bench/gateway.py [--size-mib 1024] [--keys 10000] [--rounds 5]
        [--blob-store seaweedfs|local]

``--blob-store local`` keeps the server's bytes in its data directory instead (the gateway then
streams from local files, not through SeaweedFS).

Goals: GetObject >= 0.8x, ListObjectsV2 >= 0.8x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from lamina.testing import LocalServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.server import seaweedfs

OBJECT = "big/blob.bin"
PREFIX = "keys/"
CHUNK = 1024 * 1024
GOAL = 0.8


def client(endpoint: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=seaweedfs.REGION,
        config=Config(
            s3={"addressing_style": "path"}, max_pool_connections=32, retries={"max_attempts": 1}
        ),
    )


def get_whole(s3: Any, bucket: str, key: str) -> float:
    start = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for _ in body.iter_chunks(CHUNK):
        pass
    return time.perf_counter() - start


def list_all(s3: Any, bucket: str, prefix: str, expected: int) -> float:
    start = time.perf_counter()
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    ):
        count += page["KeyCount"]
    elapsed = time.perf_counter() - start
    if count != expected:
        raise RuntimeError(f"listed {count} keys of {expected}")
    return elapsed


def put_keys(s3: Any, bucket: str, prefix: str, count: int) -> None:
    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}{index:06d}.txt", Body=b"%d" % index)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def alternate(
    rounds: int, ours: Callable[[], float], peer: Callable[[], float]
) -> tuple[list[float], list[float]]:
    mine: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        if index % 2:
            theirs.append(peer())
            mine.append(ours())
        else:
            mine.append(ours())
            theirs.append(peer())
    return mine, theirs


def report(label: str, mine: list[float], theirs: list[float], unit: str) -> bool:
    ours_s, peer_s = statistics.median(mine), statistics.median(theirs)
    ratio = peer_s / ours_s
    rounds = " ".join(f"{p / m:.2f}" for m, p in zip(mine, theirs, strict=True))
    met = ratio >= GOAL
    print(
        f"  {label:14} gateway {ours_s:7.3f} s{unit}   SeaweedFS {peer_s:7.3f} s   "
        f"{ratio:.3f}x (goal >= {GOAL}x; per round: {rounds}) {'OK' if met else 'MISSED'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--blob-store",
        choices=["seaweedfs", "local"],
        default="seaweedfs",
        help="where the server keeps the bytes its gateway streams (default: the same SeaweedFS)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        weed = seaweedfs.start(Path(scratch) / "weed")
        try:
            direct = client(weed.endpoint, seaweedfs.ACCESS_KEY, seaweedfs.SECRET_KEY)
            for bucket in ("peer", "lamina-blobs"):
                direct.create_bucket(Bucket=bucket)
            source = Path(scratch) / "source.bin"
            with source.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(CHUNK))
            transfer = TransferConfig(multipart_chunksize=64 * CHUNK, max_concurrency=8)
            with LocalServer(
                data_dir=Path(scratch) / "server",
                blob_store=weed.url("lamina-blobs") if args.blob_store == "seaweedfs" else None,
                server_args=["--no-audit-log"],
            ) as server:
                headers = {"Authorization": f"Bearer {server.api_key}"}
                with httpx.Client(
                    base_url=f"{server.endpoint_url}/api/v1", headers=headers, timeout=600
                ) as api:
                    base = f"/organizations/{server.org}/repositories/bench"
                    api.post(f"/organizations/{server.org}/repositories", json={"name": "bench"})
                    credential = api.post("/auth/s3-credentials").json()
                    gateway = client(
                        f"{server.endpoint_url}/s3",
                        credential["access_key_id"],
                        credential["secret_access_key"],
                    )
                    bucket = f"{server.org}.bench"
                    session = api.post(f"{base}/sessions").json()["session_id"]
                    print(f"loading: {args.size_mib} MiB object and {args.keys} keys on both sides")
                    gateway.upload_file(
                        str(source), bucket, f"session-{session}/{OBJECT}", Config=transfer
                    )
                    direct.upload_file(str(source), "peer", OBJECT, Config=transfer)
                    put_keys(gateway, bucket, f"session-{session}/{PREFIX}", args.keys)
                    put_keys(direct, "peer", PREFIX, args.keys)
                    committed = api.post(f"{base}/sessions/{session}", json={"message": "bench"})
                    committed.raise_for_status()
                print(
                    f"GetObject of {args.size_mib} MiB, ListObjectsV2 of {args.keys} keys, {args.rounds} rounds:"
                )
                got = alternate(
                    args.rounds,
                    lambda: get_whole(gateway, bucket, f"head/{OBJECT}"),
                    lambda: get_whole(direct, "peer", OBJECT),
                )
                mib = args.size_mib / statistics.median(got[0])
                peer_mib = args.size_mib / statistics.median(got[1])
                print(f"  throughput     gateway {mib:.0f} MiB/s, SeaweedFS {peer_mib:.0f} MiB/s")
                ok = report("GetObject", *got, unit=" ")
                listed = alternate(
                    args.rounds,
                    lambda: list_all(gateway, bucket, f"head/{PREFIX}", args.keys),
                    lambda: list_all(direct, "peer", PREFIX, args.keys),
                )
                ok = report("ListObjectsV2", *listed, unit=" ") and ok
        finally:
            weed.stop()
    print("all goals met" if ok else "a goal was missed")


if __name__ == "__main__":
    main()
