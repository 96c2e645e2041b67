"""A folder of many small files: Lamina's ``upload_dir`` (batched uploads) vs raw aiohttp
making one-request puts of the same files.

A folder of N files of 4 KiB (default 20,000) is uploaded into one session of a fresh
repository, then committed, by each contender in turn:

- lamina: ``session.objects.upload_dir(folder)`` with the AsyncClient, which sends the files in
  batched tar uploads (``POST .../objects/upload``, docs/uploads.md; default concurrency);
- raw aiohttp: one ``POST .../object/upload`` (the one-request put) per file, the file read
  for each, 32 in flight.

One reference server, started by this script, serves both. Each contender warms up on 500
files, then the rounds alternate who goes first; times are summed. The client CPU time (this
process) is reported per file.

    .venv/bin/python scripts/bench/bulk_upload.py [--files 20000] [--rounds 2]

Goal: lamina >= 3.0x raw aiohttp (files/s).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from parallel_upload import create_repo

import lamina
from lamina.testing import LocalServer

SIZE = 4 * 1024
RAW_CONCURRENCY = 32


def make_folder(root: Path, count: int) -> list[Path]:
    files = []
    for index in range(count):
        folder = root / f"d{index // 1000:03d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"f{index:06d}.bin"
        path.write_bytes(os.urandom(SIZE))
        files.append(path)
    return files


async def run_lamina(server: LocalServer, repo: str, folder: Path) -> float:
    async with lamina.AsyncClient(
        api_key=server.api_key, endpoint_url=server.endpoint_url
    ) as client:
        start = time.perf_counter()
        session = await client.repository(f"{server.org}/{repo}").session()
        await session.objects.upload_dir(folder, "up")
        await session.commit("bench")
        return time.perf_counter() - start


async def run_raw(server: LocalServer, repo: str, folder: Path) -> float:
    base = f"{server.endpoint_url}/api/v1/organizations/{server.org}/repositories/{repo}"
    auth = {"Authorization": f"Bearer {server.api_key}"}
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    connector = aiohttp.TCPConnector(limit=RAW_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=auth) as http:
        start = time.perf_counter()
        async with http.post(f"{base}/sessions") as response:
            session_id = (await response.json())["session_id"]
        queue = iter(files)

        async def worker() -> None:
            for path in queue:
                params = {
                    "session_id": session_id,
                    "path": "up/" + path.relative_to(folder).as_posix(),
                }
                async with http.post(
                    f"{base}/object/upload", params=params, data=path.read_bytes()
                ) as response:
                    assert response.status == 201, await response.text()
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(RAW_CONCURRENCY)))
        async with http.post(f"{base}/sessions/{session_id}", json={"message": "bench"}) as r:
            assert r.status == 200, await r.text()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs = {"lamina": run_lamina, "raw aiohttp": run_raw}
    seconds = {label: 0.0 for label in runs}
    cpu = {label: 0.0 for label in runs}
    repos = itertools.count()
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as scratch:
        folder, warm = Path(scratch) / "files", Path(scratch) / "warm"
        folder.mkdir()
        warm.mkdir()
        make_folder(folder, args.files)
        make_folder(warm, 500)
        with LocalServer() as server:

            def run(label: str, source: Path) -> tuple[float, float]:
                repo = create_repo(server, f"bulk-{next(repos)}")
                cpu_start = time.process_time()
                elapsed = asyncio.run(runs[label](server, repo, source))
                return elapsed, time.process_time() - cpu_start

            for label in runs:
                run(label, warm)
            labels = list(runs)
            for round_index in range(args.rounds):
                order = labels if round_index % 2 == 0 else labels[::-1]
                for label in order:
                    elapsed, used = run(label, folder)
                    seconds[label] += elapsed
                    cpu[label] += used

    total = args.files * args.rounds
    print(
        f"{args.files} x {SIZE // 1024} KiB files, {args.rounds} rounds"
        f" (load average {os.getloadavg()[0]:.2f})"
    )
    for label in runs:
        print(
            f"  {label:<12} {seconds[label]:7.2f} s  {total / seconds[label]:7.0f} files/s"
            f"  client CPU {cpu[label] / total * 1e3:5.3f} ms/file"
        )
    ratio = seconds["raw aiohttp"] / seconds["lamina"]
    verdict = "OK" if ratio >= 3.0 else "MISSED"
    print(
        f"lamina upload_dir vs raw aiohttp one-request puts: {ratio:.2f}x (goal >= 3.0x) {verdict}"
    )


if __name__ == "__main__":
    main()
