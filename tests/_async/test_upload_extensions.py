"""The SDK on the upload extensions: one-request puts and batched uploads where the server
offers them (and stage what the contract's three requests stage), the contract's uploads where
it does not or the client is told not to, and put_many's all-or-nothing batches."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina import (
    APIError,
    AsyncClient,
    BadRequestError,
    FailedPut,
    ObjectMetadata,
    PutItem,
    PutObjectResult,
    TransferProgress,
)
from lamina._async._bulk import BATCH_OBJECTS
from lamina._concurrency import agather_bounded
from lamina._transport import create_async_transport
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio

ONE_REQUEST = ("POST", "/object/upload")
BATCH = ("POST", "/objects/upload")
CONTRACT = [("PUT", "/object"), ("PUT", "/blobs/upload"), ("POST", "/object/finalize")]
CONTRACT_API = [("PUT", "/object"), ("POST", "/object/finalize")]
# On S3 the server offers neither extension; these tests are of the local store's server.
offered = pytest.mark.local_blobs_only("the upload extensions are not offered on S3")


class _Log(httpx.AsyncBaseTransport):
    """The client's real default transport, recording each request's method and the end of
    its path (from the repository on, or from /api/v1 on)."""

    def __init__(self) -> None:
        self._real = create_async_transport(16)
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for marker in ("/repositories/", "/api/v1"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        if path.startswith(("/object", "/blobs")) or "/" not in path.strip("/"):
            shown = path
        else:
            shown = "/" + path.strip("/").split("/", 1)[1]  # past the repository's name
        self.sent.append((request.method, shown))
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def _logged_client(
    server: LocalServer, **options: bool
) -> AsyncIterator[tuple[AsyncClient, _Log]]:
    log = _Log()
    async with (
        httpx.AsyncClient(transport=log) as http,
        AsyncClient(
            api_key=server.api_key, endpoint_url=server.endpoint_url, http_client=http, **options
        ) as client,
    ):
        yield client, log


@pytest.fixture
async def logged(local_server: LocalServer) -> AsyncIterator[tuple[AsyncClient, _Log]]:
    async for pair in _logged_client(local_server):
        yield pair


@pytest.fixture(scope="module")
def contract_only_server() -> Iterator[LocalServer]:
    """A server that offers no extension, as one that speaks only the contract."""
    with LocalServer(server_args=["--no-upload-extensions"]) as server:
        yield server


def _uploads(log: _Log) -> list[tuple[str, str]]:
    return [sent for sent in log.sent if sent[1].startswith(("/object", "/blobs"))]


def _same(head: ObjectMetadata) -> tuple[object, ...]:
    return (head.etag, head.content_type, head.content_length, head.metadata)


@offered
async def test_a_small_put_is_one_request_and_stages_what_three_would(
    logged: tuple[AsyncClient, _Log], local_server: LocalServer, repository: str
) -> None:
    client, log = logged
    data = b"x" * 70_000
    meta = {"owner": "ada"}
    async with client.repository(repository).session() as session:
        one = await session.objects.put("one", data, content_type="text/csv", metadata=meta)
        assert _uploads(log) == [ONE_REQUEST]
        assert log.sent.count(("GET", "/capabilities")) == 1
        async for contract, contract_log in _logged_client(local_server, upload_extensions=False):
            forced = contract.repository(repository)
            three = await forced.attach(session.session_id).objects.put(
                "three", data, content_type="text/csv", metadata=meta
            )
            assert _uploads(contract_log) == CONTRACT
            assert ("GET", "/capabilities") not in contract_log.sent
        assert one.etag == three.etag and one.path == "one"
        heads = [await session.objects.head(path) for path in ("one", "three")]
        assert _same(heads[0]) == _same(heads[1])
        assert heads[0].content_type == "text/csv" and heads[0].metadata == meta
        async with session.objects.get("one") as reader:
            assert await reader.read() == data


@offered
async def test_a_file_up_to_the_limit_streams_in_one_request(
    logged: tuple[AsyncClient, _Log], repository: str, tmp_path: Path
) -> None:
    client, log = logged
    file = tmp_path / "file.bin"
    file.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: the limit, sent in slices
    sent: list[int] = []
    async with client.repository(repository).session() as session:
        await session.objects.put("file.bin", file, progress=sent.append)
        assert _uploads(log) == [ONE_REQUEST]
        assert sum(sent) == 1024 * 1024
        async with session.objects.get("file.bin") as reader:
            assert await reader.read() == file.read_bytes()


@offered
async def test_capabilities_are_asked_once_per_client(
    logged: tuple[AsyncClient, _Log], repository: str
) -> None:
    client, log = logged
    async with client.repository(repository).session() as session:
        await session.objects.put_many([(f"f/{i}", b"%d" % i) for i in range(3)])
        for index in range(20):
            await session.objects.put(f"g/{index}", b"data")
    assert log.sent.count(("GET", "/capabilities")) == 1
    assert _uploads(log) == [BATCH] + [ONE_REQUEST] * 20


@offered
async def test_objects_over_the_limit_and_of_unknown_size_use_the_contract(
    logged: tuple[AsyncClient, _Log], repository: str
) -> None:
    client, log = logged
    big = b"b" * (1024 * 1024 + 1)
    async with client.repository(repository).session() as session:
        await session.objects.put("big", big)
        await session.objects.put("stream", iter([b"a", b"b"]))
        assert ("POST", "/object/upload") not in log.sent
        results = await session.objects.put_many([("big2", big), ("small", b"s")])
        assert [result.path for result in results] == ["big2", "small"]
        assert (await session.objects.head("big2")).content_length == len(big)
    assert _uploads(log).count(BATCH) == 1


async def test_against_a_server_without_the_extensions(
    contract_only_server: LocalServer, tmp_path: Path
) -> None:
    async for client, log in _logged_client(contract_only_server):
        await client.organization(contract_only_server.org).repositories.create("data")
        repo = client.repository(f"{contract_only_server.org}/data")
        async with repo.session() as session:
            await session.objects.put("a", b"alpha", metadata={"k": "v"})
            put_many = await session.objects.put_many([("b", b"beta"), PutItem("c", b"gamma")])
            (tmp_path / "dir").mkdir()
            (tmp_path / "dir" / "d").write_bytes(b"delta")
            uploaded = await session.objects.upload_dir(tmp_path / "dir", "up")
            await session.commit("contract")
        assert [r.path for r in put_many] == ["b", "c"] and uploaded[0].path == "up/d"
        api_calls = [sent for sent in _uploads(log) if sent[1].startswith("/object")]
        assert sorted(api_calls) == sorted(CONTRACT_API * 4)  # (bytes: to the store's URLs)
        assert log.sent.count(("GET", "/capabilities")) == 1
        assert (await repo.objects.head("a")).metadata == {"k": "v"}


@offered
async def test_a_server_that_stops_offering_them(tmp_path: Path) -> None:
    """A client that knew the server's extensions meets the same server restarted without
    them: the 501 sends it to the contract from then on."""
    first = LocalServer(data_dir=tmp_path / "data")
    first.start()
    try:
        async for client, log in _logged_client(first):
            await client.organization(first.org).repositories.create("data")
            repo = client.repository(f"{first.org}/data")
            session = await repo.session()
            await session.objects.put("before", b"1")
            assert _uploads(log) == [ONE_REQUEST]
            first.stop()
            again = LocalServer(
                data_dir=tmp_path / "data", port=first.port, server_args=["--no-upload-extensions"]
            )
            again.start()
            try:
                await session.objects.head("before")  # past the first server's pooled connections
                log.sent.clear()
                await session.objects.put("after", b"2")
                await session.objects.put_many([("many", b"3")])
                assert _uploads(log) == [ONE_REQUEST, *CONTRACT, *CONTRACT]  # 501: not retried
                await session.commit("both")
                assert sorted([e.path async for e in repo.objects.list()]) == [
                    "after",
                    "before",
                    "many",
                ]
            finally:
                again.close()
    finally:
        first.close()


async def _outcome(put: Callable[[], Any]) -> PutObjectResult | APIError:
    """``put()``'s result, or the API error it raised."""
    try:
        result: PutObjectResult = await put()
    except APIError as exc:
        return exc
    return result


@offered
async def test_small_puts_under_way_at_once_share_batched_uploads(
    logged: tuple[AsyncClient, _Log], repository: str
) -> None:
    """Puts of small objects into one session that run at the same time go in batched
    uploads (a put with none other under way, alone) and stage what each would alone."""
    client, log = logged
    count = 40
    async with client.repository(repository).session() as session:

        def put(index: int) -> Callable[[], Any]:
            return partial(
                session.objects.put,
                f"shared/{index:02d}",
                b"%d" % index * 100,
                content_type="text/plain" if index % 2 else None,
                metadata={"index": str(index)},
            )

        results = await agather_bounded([put(index) for index in range(count)], count)
        sent = _uploads(log)
        assert BATCH in sent and set(sent) <= {ONE_REQUEST, BATCH}
        assert len(sent) < count
        for index, result in enumerate(results):
            data = b"%d" % index * 100
            assert result.path == f"shared/{index:02d}"
            assert result.etag == hashlib.md5(data).hexdigest()
            head = await session.objects.head(result.path)
            assert head.content_length == len(data) and head.metadata == {"index": str(index)}
            typed = "text/plain" if index % 2 else "application/octet-stream"
            assert head.content_type == typed
        assert not client._small_puts  # nothing left waiting


@offered
async def test_a_refused_put_among_shared_ones_fails_alone(
    logged: tuple[AsyncClient, _Log], repository: str
) -> None:
    """A put the server refuses fails with the error it would get alone; the puts that
    shared its batch are staged all the same."""
    client, log = logged
    paths = [f"fine/{index}" for index in range(12)] + ["bad/../path"]
    async with client.repository(repository).session() as session:
        calls = [partial(_outcome, partial(session.objects.put, path, b"x")) for path in paths]
        outcomes = await agather_bounded(calls, len(calls))
        refused = outcomes.pop()
        assert isinstance(refused, BadRequestError) and refused.code == "invalid_path"
        assert refused.failures == ()
        assert all(isinstance(outcome, PutObjectResult) for outcome in outcomes)
        staged = sorted([record.path async for record in session.uncommitted()])
        assert staged == sorted(paths[:-1])
    assert BATCH in _uploads(log)


@offered
async def test_put_many_keeps_order_and_attributes(
    logged: tuple[AsyncClient, _Log], repository: str, tmp_path: Path
) -> None:
    client, log = logged
    file = tmp_path / "file.bin"
    file.write_bytes(b"from a file")
    items: list[PutItem | tuple[str, object]] = [
        ("z/last-name-first", b"1"),
        PutItem("a/typed.json", b"{}", content_type="application/json", metadata={"Who": "me"}),
        ("m/file", file),
        ("m/view", memoryview(b"viewed")),
        ("\u00fcnicode/" + "long" * 40, bytearray(b"wide")),
    ]
    progress: list[TransferProgress] = []
    async with client.repository(repository).session() as session:
        results = await session.objects.put_many(items, progress=progress.append)  # type: ignore[arg-type]
        assert [result.path for result in results] == [
            item.path if isinstance(item, PutItem) else item[0] for item in items
        ]
        assert _uploads(log) == [BATCH]
        typed = await session.objects.head("a/typed.json")
        assert typed.content_type == "application/json" and typed.metadata == {"who": "me"}
        async with session.objects.get("m/file") as reader:
            assert await reader.read() == b"from a file"
        assert (await session.objects.head("\u00fcnicode/" + "long" * 40)).content_length == 4
    total = 1 + 2 + len(b"from a file") + 6 + 4
    assert progress[0] == TransferProgress(0, total, 0, 5)
    assert progress[-1] == TransferProgress(total, total, 5, 5)


async def test_put_many_answers_in_order_around_objects_put_alone(
    client: AsyncClient, repository: str
) -> None:
    """An object too large for a batch, between small ones, is put alone; the results keep
    the items' order all the same."""
    items = [("a", b"small"), ("big", b"x" * (1024 * 1024 + 1)), ("c", b"small too")]
    async with client.repository(repository).session() as session:
        results = await session.objects.put_many(items)
        assert [result.path for result in results] == ["a", "big", "c"]
        for (path, data), result in zip(items, results, strict=True):
            assert result.etag == hashlib.md5(data).hexdigest(), path


@offered
async def test_put_many_stages_nothing_of_a_refused_batch(
    client: AsyncClient, repository: str
) -> None:
    async with client.repository(repository).session() as session:
        with pytest.raises(BadRequestError) as refused:
            await session.objects.put_many(
                [
                    ("fine", b"ok"),
                    ("bad/../path", b"x"),
                    PutItem("meta", b"x", metadata={"a b": "c"}),
                ]
            )
        assert refused.value.code == "batch_failed"
        failures = refused.value.failures
        assert [(f.path, f.status_code, f.code) for f in failures] == [
            ("bad/../path", 400, "invalid_path"),
            ("meta", 400, "bad_request"),
        ]
        assert isinstance(failures[0], FailedPut) and "'..'" in failures[0].message
        assert [record async for record in session.uncommitted()] == []


async def test_a_put_error_carries_no_failures(client: AsyncClient, repository: str) -> None:
    async with client.repository(repository).session() as session:
        with pytest.raises(APIError) as refused:
            await session.objects.put("bad/../path", b"x")
    assert refused.value.status_code == 400 and refused.value.failures == ()


@offered
async def test_upload_dir_sends_batches(
    logged: tuple[AsyncClient, _Log], repository: str, tmp_path: Path
) -> None:
    client, log = logged
    count = BATCH_OBJECTS * 2 + 5
    for index in range(count):
        (tmp_path / f"{index:05d}").write_bytes(b"%d" % index)
    async with client.repository(repository).session() as session:
        results = await session.objects.upload_dir(tmp_path, "many", concurrency=2)
        assert [result.path for result in results] == [f"many/{i:05d}" for i in range(count)]
        assert _uploads(log) == [BATCH] * 3
        staged = [record.path async for record in session.uncommitted()]
        assert len(staged) == count
