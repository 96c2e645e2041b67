"""``lamina cp -r`` as a whole process, progress bar drawn, vs the SDK's own ``upload_dir`` /
``download_dir`` in a script, at the same concurrency.

A folder of N files of 16 KiB is uploaded (into a session, then committed) and downloaded
again by each contender, both run as processes of their own (interpreter start and imports
included on both sides). The CLI's stderr is a forced terminal (``TTY_COMPATIBLE=1``), so
rich renders its bar as it would for a user. Rounds rotate who goes first; every upload goes
to a fresh repository, every download to a fresh folder. One reference server, started by this
script, serves both. The client CPU time (user + system of the contender's process) is
reported too: the steadier figure when the server or a shared machine limits the wall clock.

    .venv/bin/python scripts/bench/cli_cp.py [--files 5000] [--concurrency 8] [--rounds 3]

Goal: the CLI at >= 0.9x the SDK script's throughput, up and down (ratios are throughput
ratios: the SDK script's time over the CLI's).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from parallel_upload import create_repo

from lamina.testing import LocalServer

SIZE = 16 * 1024
SRC = Path(__file__).resolve().parents[2] / "src"

SDK_SCRIPT = textwrap.dedent(
    """
    import sys, anyio, lamina

    async def main(direction, repo_path, local, concurrency):
        async with lamina.AsyncClient() as client:
            repo = client.repository(repo_path)
            if direction == "up":
                session = await repo.session()
                await session.objects.upload_dir(local, "data/", concurrency=concurrency)
                await session.commit("bench")
            else:
                await repo.objects.download_dir("data/", local, concurrency=concurrency)

    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    """
)


def make_tree(root: Path, files: int) -> None:
    for index in range(files):
        target = root / f"d{index % 10}" / f"f{index:05d}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(SIZE))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of the command as a process of its own."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:6]} failed: {done.stderr.decode()[-2000:]}")
    if "lamina.cli" in command and "━".encode() not in done.stderr:
        raise RuntimeError("the CLI drew no progress bar")
    return elapsed, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds that rotate the order")
    args = parser.parse_args()
    files, concurrency = args.files, args.concurrency

    with tempfile.TemporaryDirectory() as scratch, LocalServer() as server:
        source = Path(scratch) / "source"
        make_tree(source, files)
        env = {
            **os.environ,
            "LAMINA_API_KEY": server.api_key,
            "LAMINA_ENDPOINT_URL": server.endpoint_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
            "TTY_COMPATIBLE": "1",
            "TERM": "xterm",
        }
        names = itertools.count()
        outputs = itertools.count()

        def cli(direction: str, repo: str) -> tuple[float, float]:
            base = [sys.executable, "-m", "lamina.cli", "cp", "-r", "-j", str(concurrency)]
            if direction == "up":
                return timed([*base, str(source), f"{repo}/data/", "-m", "bench"], env)
            target = Path(scratch) / f"out-{next(outputs)}"
            return timed([*base, f"{repo}/data", str(target)], env)

        def sdk(direction: str, repo: str) -> tuple[float, float]:
            local = source if direction == "up" else Path(scratch) / f"out-{next(outputs)}"
            command = [sys.executable, "-c", SDK_SCRIPT, direction, repo, str(local)]
            return timed([*command, str(concurrency)], env)

        contenders = {"lamina cp": cli, "SDK script": sdk}
        keys = [(label, way) for label in contenders for way in ("up", "down")]
        seconds: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
        cpu = dict.fromkeys(keys, 0.0)
        download_repo = f"{server.org}/{create_repo(server, 'bench-down')}"
        sdk("up", download_repo)  # the folder every download reads (and a warm-up)
        cli("down", download_repo)
        for round_index in range(args.rounds):
            order = list(contenders)[round_index % 2 :] + list(contenders)[: round_index % 2]
            for label in order:
                repo = f"{server.org}/{create_repo(server, f'bench-up-{next(names)}')}"
                for way, target in (("up", repo), ("down", download_repo)):
                    wall, used = contenders[label](way, target)
                    seconds[label, way].append(wall)
                    cpu[label, way] += used

    print(f"{files} x {SIZE // 1024} KiB files, {concurrency} in flight, {args.rounds} rounds")
    for (label, way), times in seconds.items():
        total = sum(times)
        print(
            f"  {label:<11} {way:<5} {total / args.rounds:6.2f} s/run  "
            f"{files * args.rounds / total:6.0f} files/s  "
            f"client CPU {cpu[label, way] / args.rounds:5.2f} s/run"
        )
    for way in ("up", "down"):
        ours, theirs = seconds["lamina cp", way], seconds["SDK script", way]
        ratio = sum(theirs) / sum(ours)
        per_round = " ".join(f"{b / a:.2f}" for a, b in zip(ours, theirs, strict=True))
        cpu_ratio = cpu["SDK script", way] / cpu["lamina cp", way]
        verdict = "OK" if ratio >= 0.9 else "MISSED"
        print(
            f"lamina cp vs SDK script, {way + ':':<5} {ratio:.2f}x  (goal >= 0.9x; per round: "
            f"{per_round}; client CPU {cpu_ratio:.2f}x) {verdict}"
        )


if __name__ == "__main__":
    main()
