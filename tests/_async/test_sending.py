"""Every way a client sends gives the same answers from the real server: its own pool (on
asyncio, requests with a body in memory skip the httpx objects), an injected
``httpx.AsyncClient`` over httpx's own transport, and one over Lamina's default pool used
through its httpx interface."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

import lamina
from lamina import AsyncClient
from lamina._transport import create_async_transport
from lamina.testing import LocalServer

pytestmark = pytest.mark.anyio

WAYS = ["own pool", "httpx client", "httpx client over the default pool"]


@pytest.fixture(params=WAYS)
async def client(
    request: pytest.FixtureRequest, local_server: LocalServer
) -> AsyncIterator[AsyncClient]:
    http: httpx.AsyncClient | None = None
    if request.param == "httpx client":
        http = httpx.AsyncClient()
    elif request.param == "httpx client over the default pool":
        http = httpx.AsyncClient(transport=create_async_transport(8))
    async with AsyncClient(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url, http_client=http
    ) as lamina_client:
        yield lamina_client
    if http is not None:
        assert not http.is_closed  # an injected client is the caller's to close
        await http.aclose()


async def test_puts_heads_and_calls_answer_the_same(
    client: AsyncClient, repository: str, local_server: LocalServer
) -> None:
    repo = client.repository(repository)
    data = b"hello, every way"
    async with repo.session() as session:
        put = await session.objects.put(
            "dir/a b.txt", data, content_type="text/plain", metadata={"Kind": "test"}
        )
        assert put.etag == hashlib.md5(data).hexdigest()
        meta = await session.objects.head("dir/a b.txt")
        assert (meta.etag, meta.content_type, meta.content_length) == (
            put.etag,
            "text/plain",
            len(data),
        )
        assert meta.metadata == {"kind": "test"}
        params = {"session_id": session.session_id, "path": "dir/a b.txt"}
        headers = await client.request_headers("HEAD", f"{repo.api_path}/object", params=params)
        assert headers["ETag"].strip('"') == headers["etag"].strip('"') == put.etag
        response = await client.get(f"{repo.api_path}/object", params=params, follow_redirects=True)
        assert isinstance(response, httpx.Response) and response.is_closed
        assert (response.content, response.request.method) == (data, "GET")
        assert "authorization" not in response.request.headers  # a signed URL's own token
        with pytest.raises(lamina.NotFoundError) as caught:
            await session.objects.head("dir/missing")
        assert caught.value.status_code == 404 and caught.value.method == "HEAD"
        assert caught.value.url is not None and "dir%2Fmissing" in caught.value.url
        await session.commit("every way")
    org = await client.request_json("GET", f"/organizations/{local_server.org}")
    assert org["name"] == local_server.org
    with pytest.raises(lamina.NotFoundError) as missing:
        await client.request_json("GET", "/organizations/no-such-org-here")
    assert missing.value.request_id
