"""What authorization costs: a member holding 50 policies through 3 levels of groups vs the
bootstrap admin (OrgAdmin, attached directly), through one real reference server.

- ``head()``: sequential ``HEAD .../object`` through Lamina's AsyncClient, in alternating
  blocks after a warm-up; per-call time of each side.
- 4 KiB puts: ``session.objects.put`` with ``--concurrency`` puts in flight in one session
  per side (one-request puts, the concurrent ones sharing batched uploads: docs/uploads.md), in
  alternating rounds; objects/s of each side. A batched upload authorizes each of its objects
  on its own path, so the member's policies are judged once per object.

The member is a user created in the server's data directory (as ``create-user`` does) and
added to the organization; its default ReadWrite is detached, and what it may do comes only
from the 50 policies (49 path-scoped ones that match nothing it touches, one that allows
reads and writes) attached to three nested groups it is in. Prints member/admin ratios;
goal >= 0.9x (equivalently, admin/member time <= 1.11x).

    python scripts/bench/authz.py [--heads 2000] [--puts 1000] [--rounds 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

import lamina
from lamina.testing import LocalServer
from lamina_server.identity import Identity
from lamina_server.storage.db import Database, sqlite_url

PATH = "bench/object.txt"
GRANT = (
    "ListObjects()\nGetObject()\nPutObject()\nCreateSession()\nRollbackSession()\nGetSession()\n"
)


async def _create_user(server: LocalServer) -> tuple[str, str]:
    db = Database(sqlite_url(server.data_dir))
    try:
        created = await Identity(db).create_user("bench-member")
    finally:
        await db.dispose()
    return created.principal.id, created.api_key


def setup(server: LocalServer) -> str:
    """The member's key, with its 50 policies through 3 levels of groups."""
    user_id, key = asyncio.run(_create_user(server))
    o = f"/organizations/{server.org}"
    with httpx.Client(
        base_url=f"{server.endpoint_url}/api/v1",
        headers={"Authorization": f"Bearer {server.api_key}"},
    ) as api:

        def ok(response: httpx.Response) -> httpx.Response:
            assert response.is_success, response.text
            return response

        ok(api.post(f"{o}/repositories", json={"name": "authz"}))
        ok(api.post(f"{o}/members", json={"user_id": user_id}))
        policies = {p["name"]: p["id"] for p in ok(api.get(f"{o}/policies")).json()["results"]}
        ok(
            api.delete(
                f"{o}/policies/{policies['ReadWrite']}/attachments",
                params={"principal_type": "user", "principal_id": user_id},
            )
        )
        groups = [
            ok(api.post(f"{o}/groups", json={"name": f"level{i}"})).json()["id"] for i in range(3)
        ]
        subjects = [("user", user_id), ("group", groups[0]), ("group", groups[1])]
        for group_id, (kind, subject) in zip(groups, subjects, strict=True):
            ok(
                api.post(
                    f"{o}/groups/{group_id}/members",
                    json={"subject_type": kind, "subject_id": subject},
                )
            )
        for index in range(50):
            text = (
                GRANT
                if index == 49
                else f'GetObject(path="area{index}/*")\nDeny PutObject(path="area{index}/locked/*")\n'
            )
            policy = ok(api.post(f"{o}/policies", json={"name": f"p{index}", "policy_text": text}))
            ok(
                api.post(
                    f"{o}/policies/{policy.json()['id']}/attachments",
                    json={"principal_type": "group", "principal_id": groups[index % 3]},
                )
            )
    return key


async def bench(server: LocalServer, member_key: str, args: argparse.Namespace) -> None:
    async with (
        lamina.AsyncClient(api_key=server.api_key, endpoint_url=server.endpoint_url) as admin,
        lamina.AsyncClient(api_key=member_key, endpoint_url=server.endpoint_url) as member,
    ):
        repo = admin.organization(server.org).repositories.get("authz")
        async with repo.session() as session:
            await session.objects.put(PATH, b"hello authz")
            await session.commit("seed")
        sides = {
            "admin": admin.organization(server.org).repositories.get("authz"),
            "member": member.organization(server.org).repositories.get("authz"),
        }

        def heads(repository: lamina.AsyncRepository) -> Callable[[int], Awaitable[None]]:
            async def run(n: int) -> None:
                for _ in range(n):
                    await repository.objects.head(PATH)

            return run

        def puts(repository: lamina.AsyncRepository) -> Callable[[int], Awaitable[None]]:
            async def run(n: int) -> None:
                data = b"x" * 4096
                async with repository.session() as session:
                    limit = asyncio.Semaphore(args.concurrency)

                    async def one(i: int) -> None:
                        async with limit:
                            await session.objects.put(f"puts/{time.monotonic_ns()}-{i}", data)

                    await asyncio.gather(*(one(i) for i in range(n)))
                    await session.rollback()

            return run

        for label, count, make in (("head()", args.heads, heads), ("4 KiB put", args.puts, puts)):
            runs = {side: make(repository) for side, repository in sides.items()}
            for run in runs.values():
                await run(min(count, 200))  # warm-up
            totals = dict.fromkeys(runs, 0.0)
            for index in range(args.rounds):
                order = list(runs) if index % 2 == 0 else list(reversed(runs))
                for side in order:
                    start = time.perf_counter()
                    await runs[side](count // args.rounds)
                    totals[side] += time.perf_counter() - start
            rates = {side: count / total for side, total in totals.items()}
            ratio = rates["member"] / rates["admin"]
            verdict = "OK" if ratio >= 0.9 else "MISSED"
            print(
                f"{label:10} admin {rates['admin']:8.0f}/s  member {rates['member']:8.0f}/s"
                f"  member/admin {ratio:.2f}x (goal >= 0.9x) {verdict}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=2000)
    parser.add_argument("--puts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with LocalServer() as server:
        key = setup(server)
        asyncio.run(bench(server, key, args))


if __name__ == "__main__":
    main()
