"""Faults a real server cannot easily produce, injected with ``httpx.MockTransport`` through
``http_client=``: rate limits, 5xx, dropped connections, malformed bodies, redirects to another
origin. Sleeps between retries are recorded instead of slept."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from attrs import frozen

import lamina
from lamina import AsyncClient

pytestmark = pytest.mark.anyio

ENDPOINT = "http://lamina.test:8710"
API = f"{ENDPOINT}/api/v1"
OK = {"results": [], "pagination": {"has_more": False, "next_offset": "", "max_per_page": 100}}


class Script:
    """Answers each request with the next scripted step (a response, or an httpx exception
    class to raise), records the requests, and records retry sleeps instead of sleeping."""

    def __init__(self, *steps: httpx.Response | type[httpx.TransportError]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        raise step("injected fault", request=request)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def reply(status: int, body: Any = None, **headers: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


def envelope(status: int, message: str) -> httpx.Response:
    return reply(status, {"message": message, "code": "c", "request_id": f"req-{status}"})


@asynccontextmanager
async def scripted(script: Script, **options: Any) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as http:
        client = AsyncClient(api_key="tuk-test", endpoint_url=ENDPOINT, http_client=http, **options)
        client._sleep = script.sleep
        async with client:
            yield client
        assert not http.is_closed  # an injected client is never closed by Lamina


async def test_429_with_retry_after_seconds_is_retried_after_that_delay() -> None:
    script = Script(reply(429, {"message": "slow down"}, **{"Retry-After": "1"}), reply(200, OK))
    async with scripted(script) as client:
        response = await client.get("/organizations")
    assert response.status_code == 200
    assert len(script.requests) == 2
    assert script.sleeps == [1.0]


async def test_429_with_retry_after_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    script = Script(
        reply(429, None, **{"Retry-After": format_datetime(when, usegmt=True)}), reply(200, OK)
    )
    async with scripted(script) as client:
        await client.get("/organizations")
    assert len(script.sleeps) == 1
    assert 27.0 <= script.sleeps[0] <= 30.0


async def test_503_then_success_backs_off_with_jitter() -> None:
    script = Script(envelope(503, "busy"), envelope(502, "busy"), reply(200, OK))
    async with scripted(script) as client:
        assert (await client.request_json("GET", "/organizations")) == OK
    assert len(script.requests) == 3
    assert 0.0 <= script.sleeps[0] <= 0.5
    assert 0.0 <= script.sleeps[1] <= 1.0


async def test_exhausted_retries_raise_the_typed_error() -> None:
    limited = reply(429, {"message": "slow down"}, **{"Retry-After": "2"})
    script = Script(limited, limited, limited)
    async with scripted(script) as client:
        with pytest.raises(lamina.RateLimitError) as caught:
            await client.get("/organizations")
    assert caught.value.retry_after == 2.0
    assert caught.value.message == "slow down"
    assert len(script.requests) == 3  # the first try and max_retries=2 retries
    assert script.sleeps == [2.0, 2.0]

    script = Script(envelope(500, "broken"), envelope(500, "broken"))
    async with scripted(script, max_retries=1) as client:
        with pytest.raises(
            lamina.ServerError, match=r"-> 500: broken \[code=c request_id=req-500\]"
        ):
            await client.get("/organizations")
    assert len(script.requests) == 2


async def test_max_retries_per_call_overrides_the_client() -> None:
    script = Script(envelope(503, "busy"))
    async with scripted(script, max_retries=5) as client:
        with pytest.raises(lamina.ServerError):
            await client.get("/organizations", max_retries=0)
    assert len(script.requests) == 1


async def test_connection_errors_are_retried_for_get() -> None:
    script = Script(httpx.ConnectError, httpx.RemoteProtocolError, reply(200, OK))
    async with scripted(script) as client:
        assert (await client.get("/organizations")).status_code == 200
    assert len(script.requests) == 3


async def test_post_is_retried_only_when_the_connection_was_never_made() -> None:
    script = Script(httpx.ConnectError, httpx.ConnectTimeout, reply(201, {"id": "1"}))
    async with scripted(script) as client:
        assert (await client.post("/organizations", json={"name": "a"})).status_code == 201
    assert len(script.requests) == 3

    script = Script(httpx.RemoteProtocolError, reply(201, {"id": "1"}))
    async with scripted(script) as client:
        with pytest.raises(lamina.TransportError, match="RemoteProtocolError") as caught:
            await client.post("/organizations", json={"name": "a"})
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert len(script.requests) == 1

    script = Script(httpx.ReadTimeout, reply(201, {"id": "1"}))
    async with scripted(script) as client:
        with pytest.raises(lamina.TransportError, match="ReadTimeout"):
            await client.patch("/organizations/a", json={})
    assert len(script.requests) == 1


async def test_post_5xx_is_retried_only_with_an_idempotency_key() -> None:
    script = Script(envelope(503, "busy"), reply(201, {"id": "1"}))
    async with scripted(script) as client:
        with pytest.raises(lamina.ServerError):
            await client.post("/organizations", json={"name": "a"})
    assert len(script.requests) == 1

    script = Script(envelope(503, "busy"), reply(201, {"id": "1"}))
    async with scripted(script) as client:
        response = await client.post(
            "/organizations", json={"name": "a"}, headers={"Idempotency-Key": "k-1"}
        )
    assert response.status_code == 201
    assert len(script.requests) == 2
    assert script.requests[1].headers["idempotency-key"] == "k-1"
    assert json.loads(script.requests[1].content) == {"name": "a"}  # the body is resent

    script = Script(envelope(503, "busy"), reply(200, {}))
    async with scripted(script) as client:
        await client.post("/organizations/a/sessions/s/commit", idempotent=True)
    assert len(script.requests) == 2


async def test_post_429_is_retried_as_the_server_refused_it() -> None:
    script = Script(reply(429, None, **{"Retry-After": "0"}), reply(201, {"id": "1"}))
    async with scripted(script) as client:
        assert (await client.post("/organizations", json={})).status_code == 201
    assert script.sleeps == [0.0]


async def test_a_streamed_body_is_never_resent() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    script = Script(envelope(503, "busy"), reply(200, {}))
    async with scripted(script) as client:
        with pytest.raises(lamina.ServerError):
            await client.put("/upload", content=chunks())
    assert len(script.requests) == 1


async def test_malformed_json_raises_serialization_error() -> None:
    script = Script(httpx.Response(200, content=b"{not json", headers={"X-Request-Id": "r"}))
    async with scripted(script) as client:
        with pytest.raises(lamina.SerializationError, match="not JSON"):
            await client.request_json("GET", "/organizations")


@frozen
class Org:
    id: str
    name: str


async def test_missing_and_mistyped_fields_raise_serialization_error_with_the_path() -> None:
    page = {
        "results": [{"id": "1", "name": "a"}, {"id": "2"}],
        "pagination": {"has_more": False, "next_offset": ""},
    }
    script = Script(reply(200, page), reply(200, {"results": "nope"}))
    async with scripted(script) as client:
        with pytest.raises(
            lamina.SerializationError, match=r"required field missing @ \$\.results\[1\]\.name"
        ):
            await client.fetch_page("/organizations", Org)
        with pytest.raises(lamina.SerializationError, match=r"@ \$\.results"):
            await client.fetch_page("/organizations", Org)
        with pytest.raises(lamina.SerializationError, match=r"@ \$\.id"):
            client.structure({"id": 1, "name": "a"}, Org)


async def test_has_more_without_a_cursor_raises_serialization_error() -> None:
    broken = {"results": [{"id": "1", "name": "a"}], "pagination": {"has_more": True}}
    script = Script(reply(200, broken))
    async with scripted(script) as client:
        with pytest.raises(lamina.SerializationError, match="next_offset"):
            async for _ in client.paginate("/organizations", Org):
                pass
    assert len(script.requests) == 1


async def test_streamed_error_responses_are_read_and_mapped() -> None:
    script = Script(envelope(404, "no such object"))
    async with scripted(script) as client:
        with pytest.raises(lamina.NotFoundError, match="no such object") as caught:
            async with client.stream("GET", "/object", params={"path": "a"}):
                pytest.fail("an error response is not yielded")
    assert caught.value.response_text.startswith('{"message": "no such object"')


async def test_an_unfollowed_redirect_is_an_api_error() -> None:
    script = Script(reply(307, None, Location="http://elsewhere.test/blob"))
    async with scripted(script) as client:
        with pytest.raises(lamina.APIError) as caught:
            await client.get("/object")
    assert type(caught.value) is lamina.APIError
    assert caught.value.status_code == 307


async def test_redirect_to_another_origin_drops_the_api_key() -> None:
    script = Script(
        reply(307, None, Location="http://blobs.test/b/1?sig=x"),
        httpx.Response(206, content=b"abc"),
    )
    async with scripted(script) as client:
        response = await client.get(
            "/object", params={"path": "a"}, headers={"Range": "bytes=0-2"}, follow_redirects=True
        )
    assert response.content == b"abc"
    first, second = script.requests
    assert first.headers["authorization"] == "Bearer tuk-test"
    assert str(second.url) == "http://blobs.test/b/1?sig=x"
    assert "authorization" not in second.headers
    assert second.headers["range"] == "bytes=0-2"


async def test_the_api_key_goes_only_to_the_clients_origin() -> None:
    script = Script(reply(200, {}), reply(200, {}), reply(200, {}), reply(200, {}))
    async with scripted(script) as client:
        await client.get(f"{API}/organizations")  # absolute, same origin
        await client.put("http://blobs.test/upload?sig=1", content=b"x")  # presigned elsewhere
        await client.put(f"{API}/data/upload?sig=1", content=b"x", authenticated=False)
        await client.get("organizations", params={"a": None, "b": True, "c": [1, 2]})
    same, other, unauthenticated, relative = script.requests
    assert same.headers["authorization"] == "Bearer tuk-test"
    assert "authorization" not in other.headers
    assert "authorization" not in unauthenticated.headers
    assert other.headers["user-agent"] == f"lamina-python/{lamina.__version__}"
    assert str(relative.url) == f"{API}/organizations?b=true&c=1&c=2"


async def test_per_call_timeout_reaches_the_transport() -> None:
    script = Script(reply(200, {}), reply(200, {}))
    async with scripted(script, timeout=7.0) as client:
        await client.get("/organizations")
        await client.get("/organizations", timeout=httpx.Timeout(1.0, read=2.0))
    assert script.requests[0].extensions["timeout"] == {
        "connect": 7.0,
        "read": 7.0,
        "write": 7.0,
        "pool": 7.0,
    }
    assert script.requests[1].extensions["timeout"]["read"] == 2.0


async def test_a_head_error_reads_its_message_and_code_from_the_headers() -> None:
    """What the server sends on every error response: a HEAD has no body, so the message
    and code also travel as headers (the message percent-encoded UTF-8)."""
    script = Script(
        httpx.Response(
            404,
            headers={
                "X-Error-Code": "not_found",
                "X-Error-Message": "object %27caf%C3%A9.txt%27 not found",
                "X-Request-Id": "req-head",
            },
        ),
        httpx.Response(404),
    )
    async with scripted(script) as client:
        with pytest.raises(lamina.NotFoundError) as caught:
            await client.request("HEAD", "/object", params={"path": "café.txt"})
        assert caught.value.message == "object 'café.txt' not found"
        assert (caught.value.code, caught.value.request_id) == ("not_found", "req-head")
        with pytest.raises(lamina.NotFoundError) as bare:
            await client.request("HEAD", "/object", params={"path": "x"})
    assert (
        bare.value.message
        == f"HEAD {API}/object?path=x answered 404 Not Found with no error message"
    )


async def test_transport_and_serialization_errors_show_no_token() -> None:
    signed = "http://blobs.test/api/v1/blobs/upload?token=eyJzZWNyZXQ.c2ln"
    script = Script(httpx.ReadError, httpx.Response(200, content=b"<html>"))
    async with scripted(script, max_retries=0) as client:
        with pytest.raises(lamina.TransportError) as failed:
            await client.put(signed, content=b"x")
        with pytest.raises(lamina.SerializationError) as garbled:
            await client.request_json("GET", signed)
    for error in (failed.value, garbled.value):
        assert "token=[REDACTED]" in str(error)
        assert "eyJzZWNyZXQ" not in str(error) and "eyJzZWNyZXQ" not in repr(error)


async def test_argument_mistakes_are_typed_errors_that_say_what_to_pass() -> None:
    async with scripted(Script()) as client:
        with pytest.raises(lamina.InvalidArgumentError, match="'org/repo'") as caught:
            client.repository("no-slash")
        assert isinstance(caught.value, ValueError)
        with pytest.raises(lamina.InvalidArgumentTypeError, match="names are str"):
            client.organization(42)  # type: ignore[arg-type]
        with pytest.raises(lamina.InvalidArgumentError, match="page_size"):
            client.paginate("/organizations", Org, page_size=0)
