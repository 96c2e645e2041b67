"""The module-level API on a default blocking client: ``lamina.repository("org/repo")``,
``lamina.organization("org")``, ``lamina.organizations``, ``lamina.can_i(...)``,
``lamina.explain(...)`` and ``lamina.configure(...)``.

The default client is created on first use from the environment and config file (see
:class:`~lamina.Client`); ``configure()`` replaces it, closing the previous one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lamina._sync._client import Client
from lamina._types import NOT_GIVEN, NotGiven, TimeoutTypes

if TYPE_CHECKING:
    from lamina._sync.resources.organizations import Organization, Organizations
    from lamina._sync.resources.repositories import Repository
    from lamina.models.policies import Explanation

__all__ = ["can_i", "configure", "default_client", "explain", "organization", "repository"]

_lock = threading.Lock()
_default_client: Client | None = None


def configure(
    *,
    api_key: str | None = None,
    endpoint_url: str | None = None,
    timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
    max_retries: int | NotGiven = NOT_GIVEN,
    default_headers: Mapping[str, str] | None = None,
    default_sandbox_image: str | None = None,
) -> Client:
    """Replace the default client used by the module-level functions; returns it.

    Unset settings resolve as for :class:`~lamina.Client` (environment, then config file).
    The previous default client is closed.
    """
    global _default_client
    client = Client(
        api_key=api_key,
        endpoint_url=endpoint_url,
        timeout=timeout,
        max_retries=max_retries,
        default_headers=default_headers,
        default_sandbox_image=default_sandbox_image,
    )
    with _lock:
        previous, _default_client = _default_client, client
    if previous is not None:
        previous.close()
    return client


def default_client() -> Client:
    """The default client, created on first use."""
    global _default_client
    with _lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


def repository(path: str) -> Repository:
    """A handle on the repository ``"org/repo"`` through the default client (no request)."""
    return default_client().repository(path)


def organization(name: str) -> Organization:
    """A handle on the organization ``name`` through the default client (no request)."""
    return default_client().organization(name)


def organizations() -> Organizations:
    """The default client's ``organizations`` (``lamina.organizations`` is this, live)."""
    return default_client().organizations


def can_i(action: str, resource: str) -> bool:
    """Whether the default client's caller may perform ``action`` on ``resource``
    (``"org"``, ``"org/repo"`` or ``"org/repo/path"``), without trying it
    (:meth:`Client.can_i <lamina.Client.can_i>`)."""
    return default_client().can_i(action, resource)


def explain(action: str, resource: str) -> Explanation:
    """Whether the default client's caller may perform ``action`` on ``resource``, and which
    policy line decides (:meth:`Client.explain <lamina.Client.explain>`)."""
    return default_client().explain(action, resource)
