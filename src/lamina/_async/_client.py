"""The client: configuration, its connection pools, auth, retries and error mapping."""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx
from attrs import evolve

from lamina._async._pager import AsyncPager
from lamina._concurrency import AsyncBatcher, AsyncLimiter, asleep
from lamina._config import resolve_config
from lamina._converter import make_converter, structure
from lamina._errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LaminaError,
    SerializationError,
    TransportError,
    api_error_from_response,
)
from lamina._http import (
    CONNECT_ERRORS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_REDIRECTS,
    HeaderSets,
    Prepared,
    Reply,
    is_request_idempotent,
    prepare,
    redirect,
    timeout_extension,
)
from lamina._pagination import offset_cursor, offset_page
from lamina._redact import redact
from lamina._retry import retry_delay, should_retry
from lamina._transport import AsyncWire
from lamina._types import (
    NOT_GIVEN,
    Envelope,
    NotGiven,
    Page,
    RequestContent,
    RequestOptions,
    TimeoutTypes,
)
from lamina._urls import ApiUrls
from lamina._websocket import handshake_headers, websocket_url
from lamina.models.evidence import EvidencePublicKey

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from lamina._async.resources.auth import AsyncAuth
    from lamina._async.resources.organizations import AsyncOrganization, AsyncOrganizations
    from lamina._async.resources.repositories import AsyncRepository
    from lamina.models.capabilities import Capabilities
    from lamina.models.policies import Explanation

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """A connection to a Lamina (Tilde API) server.

    Settings resolve as: the arguments > ``LAMINA_API_KEY`` / ``LAMINA_ENDPOINT_URL`` >
    ``~/.lamina/config.toml`` > the local default ``http://127.0.0.1:8710``. A missing API key
    raises :class:`~lamina.ConfigurationError` at the first request that needs it.

    - ``timeout``: seconds (or an ``httpx.Timeout``) for each phase of a request; ``None``
      disables it. Every call also takes ``timeout=``.
    - ``max_retries``: retries after a connection error, 408, 429 or 5xx (default 2); every call
      also takes ``max_retries=``. See :mod:`lamina._retry` for the policy.
    - ``http_client``: an ``httpx`` client to send requests with, used as-is and never closed by
      this client (for proxies, custom TLS, or test transports).
    - ``default_headers``: headers added to every request.
    - ``max_concurrency``: size of each connection pool (on asyncio, one for API calls and one
      for streamed transfers), and of :attr:`limiter`, which bounds the
      uploads whose bodies are read as they are sent (large objects' parts), so the bytes that
      bulk transfers keep in flight.
    - ``default_sandbox_image``: the image of sandboxes created without one (``repo.shell()``,
      ``repo.execute()``...); falls back to ``LAMINA_DEFAULT_SANDBOX_IMAGE``, the config file's
      ``default_sandbox_image``, then ``"host"`` (the reference server's default image).
    - ``upload_extensions``: use the server's upload extensions where it advertises them
      (one-request puts of small objects, batched uploads: docs/uploads.md); ``False`` keeps
      to the contract's three-request uploads.

    The connection pools open on the first request; close them with ``aclose()`` or by using
    the client as a context manager.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        endpoint_url: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        http_client: httpx.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_concurrency: int = 64,
        default_sandbox_image: str | None = None,
        upload_extensions: bool = True,
    ) -> None:
        config = resolve_config(
            api_key=api_key, endpoint_url=endpoint_url, default_sandbox_image=default_sandbox_image
        )
        self.endpoint_url = config.endpoint_url
        self.default_sandbox_image = config.default_sandbox_image
        self.base_url = f"{self.endpoint_url}/api/v1"
        self.max_retries = DEFAULT_MAX_RETRIES if isinstance(max_retries, NotGiven) else max_retries
        self.converter = make_converter()
        self.limiter = AsyncLimiter(max_concurrency)
        self._urls = ApiUrls(self.base_url)
        self._timeout = timeout_extension(
            DEFAULT_TIMEOUT if isinstance(timeout, NotGiven) else timeout
        )
        self._headers = HeaderSets(self._urls.origin, config.api_key, default_headers)
        self._wire = AsyncWire(max_concurrency, http_client)
        self._organizations: AsyncOrganizations | None = None
        # False once the server answered 501 to a multipart upload: single uploads from then on
        self._multipart_supported = True
        # The server's capabilities document, once asked (lamina._async._capabilities)
        self.upload_extensions = upload_extensions
        self._capabilities: Capabilities | None = None
        self._capabilities_lock = AsyncLimiter(1)
        # Small puts under way, per (repository, session), sharing requests
        # (lamina._async._object_writer)
        self._small_puts: dict[tuple[str, str], AsyncBatcher[Any, Any]] = {}
        self._sleep = asleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint_url={self.endpoint_url!r})"

    # -- resources ---------------------------------------------------------------------------

    def repository(self, path: str) -> AsyncRepository:
        """A handle on the repository ``"org/repo"`` (no request is made)."""
        from lamina._async.resources.repositories import AsyncRepository

        if not isinstance(path, str):
            raise InvalidArgumentTypeError(
                f"repository() takes the repository's path as a str 'org/repo', "
                f"got {type(path).__name__}"
            )
        org, _, name = path.partition("/")
        if not org or not name or "/" in name:
            raise InvalidArgumentError(
                f"repository() takes a path 'org/repo' (e.g. 'acme/datasets'), got {path!r}"
            )
        return AsyncRepository(self, org, name)

    def organization(self, name: str) -> AsyncOrganization:
        """A handle on the organization ``name`` (no request is made)."""
        from lamina._async.resources._paths import segment
        from lamina._async.resources.organizations import AsyncOrganization

        segment(name)  # a name that cannot be one fails here, not at the first request
        return AsyncOrganization(self, name)

    @property
    def organizations(self) -> AsyncOrganizations:
        """The organizations the caller belongs to: ``list()``, ``get()``, ``create()``."""
        if self._organizations is None:
            from lamina._async.resources.organizations import AsyncOrganizations

            self._organizations = AsyncOrganizations(self)
        return self._organizations

    @property
    def auth(self) -> AsyncAuth:
        """The calling user's account: ``me()`` and API ``keys``."""
        from lamina._async.resources.auth import AsyncAuth

        return AsyncAuth(self)

    # -- authorization, asked in advance -----------------------------------------------------

    async def can_i(self, action: str, resource: str) -> bool:
        """Whether the caller may perform ``action`` (``"GetObject"``) on ``resource``
        (``"org"``, ``"org/repo"`` or ``"org/repo/path"``), as the server's authorizer answers
        without trying it (see :meth:`AsyncAuth.permission`; :meth:`explain` names the
        deciding policy line)."""
        return (await self.auth.permission(action, resource)).allowed

    async def explain(self, action: str, resource: str) -> Explanation:
        """Whether the caller may perform ``action`` on ``resource``, and which policy line
        decides. The caller's effective policies in the organization are fetched and evaluated
        by the SDK (a ``Deny`` line wins; what nothing allows is denied); the action itself is
        not tried. :class:`~lamina.PolicySyntaxError` when a policy uses syntax the SDK's
        evaluator does not know."""
        from lamina._async.resources.policies import explain

        return await explain(self, action, resource)

    # -- evidence ----------------------------------------------------------------------------

    async def evidence_public_key(self) -> EvidencePublicKey:
        """The key the server signs evidence packs with (published without authentication):
        pass its ``public_key_pem`` to :func:`lamina.evidence.verify`."""
        data = await self.request_json("GET", "/evidence/public-key", authenticated=False)
        return structure(self.converter, data, EvidencePublicKey)

    # -- escape hatch ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: RequestContent | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        idempotent: bool | None = None,
        follow_redirects: bool = False,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send a request with auth, retries and error mapping; returns the read response.

        ``path`` is relative to :attr:`base_url` (``"/organizations/acme"``) or an absolute
        URL; the API key is sent only to the client's own origin, only when
        ``authenticated``, and never to a redirect's target (the API redirects to signed
        URLs, which carry their own credential). ``params`` whose value is ``None`` are left
        out. ``idempotent`` overrides what the method and an ``Idempotency-Key`` header say
        about retrying.
        Any status other than 2xx raises the matching :class:`~lamina.APIError`.
        """
        reply = await self._send(
            method,
            path,
            stream=False,
            params=params,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            max_retries=max_retries,
            idempotent=idempotent,
            follow_redirects=follow_redirects,
            authenticated=authenticated,
        )
        return reply.httpx_response()

    async def get(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("GET", path, ...)``."""
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("POST", path, ...)``."""
        return await self.request("POST", path, **options)

    async def put(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("PUT", path, ...)``."""
        return await self.request("PUT", path, **options)

    async def patch(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("PATCH", path, ...)``."""
        return await self.request("PATCH", path, **options)

    async def delete(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("DELETE", path, ...)``."""
        return await self.request("DELETE", path, **options)

    async def request_json(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Any:
        """``request()``, then the body parsed as JSON (``None`` for an empty body).

        A body that is not JSON raises :class:`~lamina.SerializationError`.
        """
        reply = await self._send(method, path, stream=False, **options)
        content = reply.content
        if not content:
            return None
        try:
            return jsonlib.loads(content)
        except ValueError as exc:
            response = reply.httpx_response()
            raise SerializationError(
                redact(
                    f"{response.request.method} {response.request.url} -> "
                    f"{response.status_code}: the body is not JSON: {response.text[:200]!r}"
                )
            ) from exc

    async def request_headers(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> Mapping[str, str]:
        """``request()``, then only the response's headers (a case-insensitive mapping): less
        work per call than a whole ``httpx.Response`` when the body does not matter."""
        return (await self._send(method, path, stream=False, **options)).headers

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the response before its body is read (for downloads).

        Retries and error mapping are as for :meth:`request`; an error response is read and
        raised before anything is yielded. The response is closed on exit.
        """
        response = (await self._send(method, path, stream=True, **options)).httpx_response()
        try:
            yield response
        finally:
            await response.aclose()

    def structure(self, data: Any, cl: type[T]) -> T:
        """Build ``cl`` (a model) from JSON data; :class:`~lamina.SerializationError` names the
        path of a bad field."""
        return structure(self.converter, data, cl)

    # -- pagination --------------------------------------------------------------------------

    async def fetch_page(
        self, path: str, model: type[T], *, params: Mapping[str, Any] | None = None
    ) -> Page[T]:
        """One page of a list route that answers with the standard envelope
        ``{"results": [...], "pagination": {"has_more", "next_offset", "max_per_page"}}``."""
        data = await self.request_json("GET", path, params=params)
        envelope = structure(self.converter, data, Envelope[model])  # type: ignore[valid-type]
        pagination = envelope.pagination
        return Page(
            items=envelope.results,
            has_more=pagination.has_more,
            next_offset=pagination.next_offset or None,
        )

    def paginate(
        self,
        path: str,
        model: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        amount: int | None = None,
        page_size: int = 100,
        after: str | None = None,
    ) -> AsyncPager[T]:
        """A lazy pager over a standard-envelope list route, as ``model`` items.

        ``amount`` caps the total (``0`` fetches nothing), ``page_size`` is the ``amount`` sent
        per request, ``after`` the cursor to start after.
        """

        async def fetch_page(cursor: str | None, size: int) -> Page[T]:
            query = {**(params or {}), "amount": size, "after": cursor}
            return await self.fetch_page(path, model, params=query)

        return AsyncPager(fetch_page, amount=amount, page_size=page_size, after=after)

    @overload
    def paginate_offset(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit_param: str = "limit",
        offset_param: str = "offset",
        items_key: str = "items",
        page_size: int = 100,
        model: None = None,
        amount: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncPager[Any]: ...

    @overload
    def paginate_offset(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit_param: str = "limit",
        offset_param: str = "offset",
        items_key: str = "items",
        page_size: int = 100,
        model: type[T],
        amount: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncPager[T]: ...

    def paginate_offset(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit_param: str = "limit",
        offset_param: str = "offset",
        items_key: str = "items",
        page_size: int = 100,
        model: type[Any] | None = None,
        amount: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncPager[Any]:
        """A lazy pager over any limit/offset list route: ``GET path?limit=&offset=`` answering
        ``{"items": [...], "total": n, ...}``.

        ``limit_param``, ``offset_param`` and ``items_key`` name the route's own parameters and
        list (e.g. ``"evidence_limit"``, ``"evidence_offset"``, ``"evidence_packs"``);
        ``params`` are sent with every page (``None`` values left out), and so are
        ``headers`` (e.g. ``X-Lamina-Organization`` for the ``/api/v2`` facade). Items are the JSON
        objects as they are, or ``model`` instances. ``page_size`` is the limit sent per
        request, ``amount`` caps the total. The listing stops at an empty page, or at a short
        one unless the route's ``total`` says more remain; the pager's ``total`` is the route's.

        ``path`` is relative to :attr:`base_url` (``"/organizations/acme/audit-log"``), or,
        when it starts with ``/api/``, to :attr:`endpoint_url` (``"/api/v2/usage/summary"``),
        or an absolute URL.
        """
        url = f"{self.endpoint_url}{path}" if path.startswith("/api/") else path

        async def fetch_page(cursor: str | None, size: int) -> Page[Any]:
            offset = offset_cursor(cursor)
            query = {**(params or {}), limit_param: size, offset_param: offset}
            data = await self.request_json("GET", url, params=query, headers=headers)
            page = offset_page(data, items_key=items_key, offset=offset, limit=size)
            if model is None:
                return page
            items = structure(self.converter, page.items, list[model])  # type: ignore[valid-type]
            return evolve(page, items=items)

        return AsyncPager(fetch_page, amount=amount, page_size=page_size)

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pools (an injected ``http_client`` is left open)."""
        await self._wire.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending -----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: RequestContent | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        idempotent: bool | None = None,
        follow_redirects: bool = False,
        authenticated: bool = True,
    ) -> Reply:
        """The one retry loop: send, map the outcome, and wait and resend while the policy
        allows. Returns a 2xx reply (read unless ``stream``)."""
        if self._wire.closed:
            raise LaminaError(f"{self!r} is closed")
        target = self._urls.build(path, params)
        prepared = prepare(
            method,
            target,
            self._headers.select(target.origin, authenticated=authenticated),
            extra_headers=headers,
            json=json,
            content=content,
            timeout=self._timeout if isinstance(timeout, NotGiven) else timeout_extension(timeout),
        )
        retries = self.max_retries if isinstance(max_retries, NotGiven) else max_retries
        if prepared.streamed:
            retries = 0  # a streamed body cannot be sent twice
        attempt = 0
        while True:
            try:
                if follow_redirects:
                    reply = await self._send_following(prepared, stream)
                else:
                    reply = await self._wire.send(prepared, stream)
                if 200 <= reply.status_code < 300:
                    return reply
                retry = should_retry(
                    attempt=attempt,
                    max_retries=retries,
                    idempotent=is_request_idempotent(prepared, idempotent),
                    status_code=reply.status_code,
                )
                if not retry:
                    if reply.response is not None:
                        await reply.response.aread()
                    raise api_error_from_response(reply.httpx_response())
                if reply.response is not None:
                    await reply.response.aclose()
                delay = retry_delay(attempt, reply.headers.get("retry-after"))
            except httpx.RequestError as exc:
                retry = isinstance(exc, httpx.TransportError) and should_retry(
                    attempt=attempt,
                    max_retries=retries,
                    idempotent=is_request_idempotent(prepared, idempotent),
                    connect_failed=isinstance(exc, CONNECT_ERRORS),
                )
                if not retry:
                    raise TransportError(
                        redact(
                            f"{prepared.method} {prepared.target.text} failed: "
                            f"{type(exc).__name__}: {exc}"
                        )
                    ) from exc
                delay = retry_delay(attempt)
            attempt += 1
            await self._sleep(delay)

    def _websocket_target(self, path: str) -> tuple[str, list[tuple[str, str]], float | None]:
        """The ``ws(s)://`` URL of ``path``, the handshake headers (with the API key) and the
        connect timeout, for a websocket on the client's own endpoint."""
        if self._wire.closed:
            raise LaminaError(f"{self!r} is closed")
        target = self._urls.build(path, None)
        headers = self._headers.select(target.origin, authenticated=True)
        return websocket_url(target.url), handshake_headers(headers), self._timeout.get("connect")

    async def _send_following(self, prepared: Prepared, stream: bool) -> Reply:
        reply = await self._wire.send(prepared, stream)
        redirects = 0
        while reply.is_redirect:
            if reply.response is not None:
                await reply.response.aclose()
            if redirects == MAX_REDIRECTS:
                raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
            location = prepared.target.url.join(reply.headers["location"])
            prepared = redirect(prepared, reply, self._urls.parsed(location))
            reply = await self._wire.send(prepared, stream)
            redirects += 1
        return reply
