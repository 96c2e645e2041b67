"""Start the reference server on embedded defaults and show the SDK working against it.

Runs ``python -m lamina_server`` with its defaults (127.0.0.1:8710, data in ~/.lamina/data,
SQLite + a local folder). On the first start the server creates the ``local`` organization and an
API key and writes ~/.lamina/config.toml, so the SDK below needs no configuration at all. If a
server already answers on the endpoint, the demo uses it instead of starting one.

    python scripts/demo.py                 # start, demo, stop
    python scripts/demo.py --keep-running  # start, demo, keep serving until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time

import httpx

import lamina

ENDPOINT = "http://127.0.0.1:8710"


def server_is_up(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(endpoint: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "lamina_server"])
    deadline = time.monotonic() + 30
    while not server_is_up(endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the reference server did not start; see its output above")
        time.sleep(0.1)
    return proc


def blocking_round_trip() -> str:
    org = lamina.organization("local")
    with contextlib.suppress(lamina.ConflictError):  # an earlier run created it
        org.repositories.create("demo", description="created by scripts/demo.py")
    repo = lamina.repository("local/demo")

    with repo.session() as session:
        session.objects.put(
            "hello.txt", b"hello from the blocking SDK\n", content_type="text/plain"
        )
        session.objects.put("data/numbers.csv", b"n\n1\n2\n3\n", metadata={"source": "demo"})
        commit_id = session.commit("demo: add hello.txt and data/numbers.csv")
    print(f"blocking: committed {commit_id[:12]}")

    with repo.objects.get("hello.txt") as reader:
        print(f"blocking: read hello.txt -> {reader.read()!r}")
    for entry in repo.objects.list(delimiter="/"):
        print(f"blocking: listed {entry.type:6} {entry.path}")
    for commit in repo.commits.list(amount=3):
        print(f"blocking: log {commit.id[:12]} {commit.message}")
    return commit_id


async def async_round_trip() -> None:
    async with lamina.AsyncClient() as client:
        repo = client.repository("local/demo")
        async with repo.session() as session:
            await asyncio.gather(
                *(
                    session.objects.put(f"parallel/{i:02}.txt", f"object {i}\n".encode())
                    for i in range(16)
                )
            )
            commit_id = await session.commit("demo: 16 parallel puts")
        print(f"async: committed {commit_id[:12]}")
        commit = await repo.commits.get(commit_id)
        changes = [change async for change in commit.diff()]
        print(f"async: the commit changed {len(changes)} paths, e.g. {changes[0].path}")
        async with repo.objects.get("parallel/07.txt", byte_range=(0, 5)) as reader:
            print(f"async: first bytes of parallel/07.txt -> {await reader.read()!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-running", action="store_true", help="keep the server running")
    args = parser.parse_args()

    proc = None if server_is_up(ENDPOINT) else start_server(ENDPOINT)
    try:
        blocking_round_trip()
        asyncio.run(async_round_trip())
        if proc is not None and args.keep_running:
            print(f"serving on {ENDPOINT}; Ctrl-C to stop")
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
