"""Requests for a sandbox that another replica runs, forwarded to that replica.

A sandbox's processes live in the replica that started it (:mod:`lamina_server.sandboxes`), and
so do its live log and, once it ended, its log file. Any replica may get a request for it: the
sandbox service then raises :class:`~lamina_server.sandboxes.errors.SandboxElsewhere`, and this
module passes the request on to the owner at the URL it registered
(:mod:`lamina_server.storage.replicas`, ``--advertise-url``) — a plain request through
:meth:`Forwarder.http`, an ``/exec`` or ``/terminal`` websocket through :meth:`Forwarder.socket`,
frame for frame both ways — and passes its answer back.

The forwarded request carries the caller's own credentials, so the owner authorizes it again,
in the one place every request is authorized, and the header :data:`FORWARDED`: a token signed
with the key every replica shares, that the owner checks. A forwarded request is never
forwarded again (a stale owner answers 503 rather than a loop), and a forwarded websocket is not
recorded in the audit log a second time (the replica that took it recorded it). An owner that
does not answer is a 503 ``replica_unreachable``: a replica that died has its sandboxes marked
lost by the others within :attr:`~lamina_server.storage.replicas.Replicas.dead_after`.
"""

from __future__ import annotations

import contextlib
import json

import anyio
import httpx
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from lamina_server.api.deps import get_services
from lamina_server.api.errors import ApiError, envelope_for, request_id_of
from lamina_server.api.signing import TokenError, UrlSigner
from lamina_server.sandboxes.errors import SandboxElsewhere
from lamina_server.storage.replicas import Replicas

FORWARDED = "x-lamina-forwarded"
_KIND = "replica-forward"
_TTL = 60
# Headers of one connection, not of the request (RFC 9110 §7.6.1), and those httpx and
# websockets write themselves.
_OWN = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    FORWARDED,
}
_CLOSE_UNSENDABLE = {1005, 1006, 1015}  # close codes that name no frame; sent as 1011


class Forwarder:
    """Forwards sandbox requests to the replica that runs the sandbox. :meth:`close` at the
    end."""

    def __init__(self, replicas: Replicas, signer: UrlSigner) -> None:
        self._replicas = replicas
        self._signer = signer
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    async def close(self) -> None:
        await self._http.aclose()

    def forwarded(self, connection: HTTPConnection) -> bool:
        """Whether another replica forwarded this request (its token checks out)."""
        token = connection.headers.get(FORWARDED)
        if not token:
            return False
        try:
            self._signer.verify(_KIND, token)
        except TokenError:
            return False
        return True

    async def _owner(self, connection: HTTPConnection, exc: SandboxElsewhere) -> str:
        if not self.forwarded(connection):
            url = await self._replicas.url_of(exc.replica_id)
            if url is not None:
                return url.rstrip("/")
        raise ApiError(
            503,
            "replica_unreachable",
            f"{exc}, which does not answer; a replica that died has its sandboxes marked lost "
            f"within {self._replicas.dead_after:.0f} s",
        )

    def _headers(self, connection: HTTPConnection) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in connection.headers.items() if k.lower() not in _OWN]
        headers.append((FORWARDED, self._signer.sign(_KIND, {"r": "forward"}, ttl=_TTL)))
        if connection.client is not None:
            headers.append(("x-forwarded-for", connection.client.host))
        return headers

    async def http(self, request: Request, exc: SandboxElsewhere) -> Response:
        """The owner's answer to ``request``, streamed back as it comes."""
        owner = await self._owner(request, exc)
        upstream = self._http.build_request(
            request.method,
            owner + request.url.path,
            params=request.url.query,
            headers=self._headers(request),
            content=await request.body(),
        )
        try:
            answer = await self._http.send(upstream, stream=True)
        except httpx.HTTPError:
            raise ApiError(503, "replica_unreachable", f"{exc}, which does not answer") from None
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _OWN}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=headers,
            background=BackgroundTask(answer.aclose),
        )

    async def socket(self, websocket: WebSocket, exc: SandboxElsewhere) -> None:
        """Connects to the owner's websocket (its refusal refuses this one the same way),
        accepts this one, and relays frames both ways until either side closes."""
        owner = await self._owner(websocket, exc)
        url = "ws" + owner.removeprefix("http") + websocket.url.path
        if websocket.url.query:
            url += "?" + websocket.url.query
        try:
            upstream = await connect(
                url, additional_headers=self._headers(websocket), max_size=None, open_timeout=10
            )
        except InvalidStatus as refused:
            raise _refusal(refused) from None
        except (OSError, InvalidHandshake, TimeoutError):
            raise ApiError(503, "replica_unreachable", f"{exc}, which does not answer") from None
        async with upstream:
            await websocket.accept()
            await _relay(websocket, upstream)


def _refusal(refused: InvalidStatus) -> ApiError:
    """The owner's refusal of the websocket (an error envelope) as this replica's."""
    answer = refused.response
    try:
        body = json.loads(answer.body or b"{}")
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "replica_refused", f"the sandbox's replica answered {answer.status_code}"
    return ApiError(answer.status_code, code, message)


async def _relay(client: WebSocket, upstream: ClientConnection) -> None:
    async with anyio.create_task_group() as tasks:

        async def down() -> None:  # the owner to the client
            with contextlib.suppress(ConnectionClosed):
                async for message in upstream:
                    if isinstance(message, bytes):
                        await client.send_bytes(message)
                    else:
                        await client.send_text(message)
            code = upstream.close_code or 1000
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await client.close(1011 if code in _CLOSE_UNSENDABLE else code)
            tasks.cancel_scope.cancel()

        async def up() -> None:  # the client to the owner
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    code = int(message.get("code", 1000))
                    await upstream.close(1000 if code in _CLOSE_UNSENDABLE else code)
                    break
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text", ""))
            tasks.cancel_scope.cancel()

        tasks.start_soon(down)
        tasks.start_soon(up)


async def forward_to_owner(request: Request, exc: Exception) -> Response:
    """The app's handler of :class:`SandboxElsewhere` raised by a plain request."""
    assert isinstance(exc, SandboxElsewhere)
    services = await get_services(request)
    try:
        return await services.forwarder.http(request, exc)
    except ApiError as refused:
        return envelope_for(refused, request_id_of(request))
