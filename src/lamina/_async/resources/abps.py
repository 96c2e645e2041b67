"""ABPs (``org.abps``): named run definitions in a repository that, once deployed, are
invoked as governed runs through the ``/api/v2`` facade. Every request names the
organization in ``X-Lamina-Organization``, so any Lamina API key can act in any of its
organizations (its policies decide)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import facade_headers, facade_url, segment
from lamina._frames import command_argv
from lamina.models.runs import Abp, InvokeResult, invoke_body

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncAbps:
    """The ABPs of an organization: ``create()``, ``list()``, ``get()``, ``deploy()``,
    ``undeploy()`` and ``invoke()``."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._headers = facade_headers(org)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def _url(self, path: str) -> str:
        return facade_url(self._client.endpoint_url, path)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return await self._client.request_json(
            method, self._url(path), json=body, headers=self._headers
        )

    async def create(
        self,
        name: str,
        *,
        repository: str,
        command: str | Sequence[str],
        image: str | None = None,
        requires_approval: bool = False,
        env: Mapping[str, str] | None = None,
        timeout_seconds: int | None = None,
        path_prefix: str | None = None,
        description: str = "",
    ) -> Abp:
        """Create an ABP (a draft: ``deploy()`` it to invoke it) that runs ``command`` (a str
        through ``sh -c``, a list as-is) on the repository ``"org/repo"`` of this
        organization. ``image`` defaults to the client's ``default_sandbox_image``;
        ``timeout_seconds`` (the server's default, 300, without it) bounds each run;
        ``path_prefix`` is the part of the repository the run sees; with
        ``requires_approval`` every run's changes wait for a second principal's approval.
        A bad definition is an :class:`~lamina.UnprocessableEntityError` naming the field."""
        body: dict[str, Any] = {
            "name": name,
            "repository": repository,
            "command": command_argv(command),
            "image": image if image is not None else self._client.default_sandbox_image,
            "requires_approval": requires_approval,
            "description": description,
            "env": dict(env or {}),
        }
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        if path_prefix is not None:
            body["path_prefix"] = path_prefix
        return self._client.structure(await self._call("POST", "/abps", body), Abp)

    def list(self, *, amount: int | None = None, page_size: int = 100) -> AsyncPager[Abp]:
        """The organization's ABPs, oldest first; the pager's ``total`` counts them."""
        return self._client.paginate_offset(
            self._url("/abps"),
            headers=self._headers,
            model=Abp,
            page_size=page_size,
            amount=amount,
        )

    async def get(self, abp_id: str) -> Abp:
        """The ABP ``abp_id`` (:class:`~lamina.NotFoundError` if the organization has none)."""
        return self._client.structure(await self._call("GET", f"/abps/{segment(abp_id)}"), Abp)

    async def deploy(self, abp_id: str) -> Abp:
        """Deploy the ABP: from now on it can be invoked."""
        data = await self._call("POST", f"/abps/{segment(abp_id)}/deploy")
        return self._client.structure(data, Abp)

    async def undeploy(self, abp_id: str) -> Abp:
        """Undeploy the ABP: invoking it is a :class:`~lamina.ConflictError` until it is
        deployed again."""
        data = await self._call("POST", f"/abps/{segment(abp_id)}/undeploy")
        return self._client.structure(data, Abp)

    async def invoke(self, abp_id: str, payload: Mapping[str, Any] | None = None) -> InvokeResult:
        """Run the deployed ABP, governed, with ``payload`` (a JSON object, at most 64 KiB;
        the run reads it as ``/lamina/input/payload.json`` and ``$LAMINA_PAYLOAD``).

        The caller's policies are checked first: a refusal is not an error but the result
        (``outcome == "denied"``). The server waits up to 20 s for the run to end or be held
        for approval; a run still going answers ``outcome == "running"`` — wait for it with
        ``org.runs.wait(result.invocation_id)``. An ABP that is not deployed is a
        :class:`~lamina.ConflictError`, a payload over 64 KiB an
        :class:`~lamina.UnprocessableEntityError`; one that is not a JSON object fails before
        any request (:func:`~lamina.models.runs.invoke_body`)."""
        data = await self._call("POST", f"/abps/{segment(abp_id)}/invoke", invoke_body(payload))
        return self._client.structure(data, InvokeResult)
