"""The public surface: ``lamina.__all__`` and the module-level API on the default client."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
from collections.abc import Iterator

import pytest

import lamina
from lamina import _errors, _module_api
from lamina._async import _client as async_client
from lamina._async import _pager as async_pager
from lamina._sync import _client as sync_client
from lamina._sync import _pager as sync_pager
from lamina.testing import LocalServer


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then the rest."""
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


def test_all_is_sorted_and_unique() -> None:
    assert lamina.__all__ == sorted(lamina.__all__, key=isort_key)
    assert len(set(lamina.__all__)) == len(lamina.__all__)


def test_all_is_complete() -> None:
    required = {
        *_errors.__all__,
        *async_client.__all__,
        *async_pager.__all__,
        *sync_client.__all__,
        *sync_pager.__all__,
        "can_i",
        "configure",
        "explain",
        "organization",
        "repository",
        "NOT_GIVEN",
        "NotGiven",
        "Page",
        "__version__",
        "audit",
        "evidence",
        "Approval",
        "AuditEntry",
        "PrincipalRef",
    }
    assert required <= set(lamina.__all__), sorted(required - set(lamina.__all__))
    errors = {
        name
        for name in dir(lamina)
        if isinstance(getattr(lamina, name), type)
        and issubclass(getattr(lamina, name), lamina.LaminaError)
    }
    assert errors <= set(lamina.__all__)


def test_async_and_blocking_names_are_exported_in_pairs() -> None:
    exported = set(lamina.__all__)
    for name in exported:
        if name.startswith("Async"):
            assert name[len("Async") :] in exported, name
            assert getattr(lamina, name[len("Async") :]).__module__.startswith("lamina._sync")


def test_the_resource_packages_export_every_resource_class_in_both_modes() -> None:
    from lamina._async import resources as async_resources
    from lamina._sync import resources as sync_resources

    modules = [
        importlib.import_module(f"{async_resources.__name__}.{info.name}")
        for info in pkgutil.iter_modules(async_resources.__path__)
    ]
    defined = {
        name
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__
    }
    assert set(async_resources.__all__) == defined
    assert sync_resources.__all__ == [name[len("Async") :] for name in async_resources.__all__]
    for name in async_resources.__all__:
        async_class = getattr(async_resources, name)
        sync_class = getattr(sync_resources, name[len("Async") :])
        assert sync_class.__module__ == async_class.__module__.replace("._async.", "._sync.")


def test_every_exported_name_resolves_to_a_lamina_object() -> None:
    namespace: dict[str, object] = {}
    exec("from lamina import *", namespace)
    for name in lamina.__all__:
        value = getattr(lamina, name)
        assert namespace[name] is value
        module = getattr(value, "__module__", "lamina")
        assert module == "lamina" or module.startswith("lamina."), name


def test_version_matches_the_distribution() -> None:
    assert lamina.__version__ == importlib.metadata.version("lamina")


def test_clients_and_pagers_are_the_generated_pair() -> None:
    assert lamina.AsyncClient.__module__ == "lamina._async._client"
    assert lamina.Client.__module__ == "lamina._sync._client"
    assert lamina.Pager.__module__ == "lamina._sync._pager"


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        lamina.no_such_thing  # noqa: B018
    assert "organizations" in dir(lamina)
    assert "organizations" not in lamina.__all__  # a star-import would freeze it


@pytest.fixture
def default_client() -> Iterator[None]:
    """Restores the module's default client after the test (closing the ones it made)."""
    saved = _module_api._default_client
    _module_api._default_client = None
    yield
    current = _module_api._default_client
    _module_api._default_client = saved
    if current is not None:
        current.close()


def test_module_api_uses_the_configured_default_client(
    local_server: LocalServer, default_client: None
) -> None:
    first = lamina.configure(api_key=local_server.api_key, endpoint_url=local_server.endpoint_url)
    assert lamina.repository(f"{local_server.org}/anything").org == local_server.org
    assert lamina.organization(local_server.org).id  # loads over the wire
    assert local_server.org in [org.name for org in lamina.organizations.list()]

    second = lamina.configure(api_key="tuk-wrong", endpoint_url=local_server.endpoint_url)
    assert second is not first
    with pytest.raises(lamina.LaminaError, match="closed"):
        first.get("/organizations")  # the replaced client was closed
    with pytest.raises(lamina.AuthenticationError):
        lamina.organizations.list().__next__()  # live: follows the new default client


def test_default_client_is_created_on_first_use_from_the_environment(
    local_server: LocalServer, default_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_API_KEY", local_server.api_key)
    monkeypatch.setenv("LAMINA_ENDPOINT_URL", local_server.endpoint_url)
    assert _module_api._default_client is None
    orgs = [org.name for org in lamina.organizations.list()]
    assert local_server.org in orgs
    assert _module_api.default_client().endpoint_url == local_server.endpoint_url


def test_the_collections_public_properties_return_are_exported() -> None:
    """``repo.objects``, ``repo.commits``, ``org.repositories``, ``client.organizations``...:
    every resource class a public property or method returns can be named from ``lamina``."""
    from lamina._async import resources as async_resources
    from lamina._sync import resources as sync_resources

    resource_names = {*async_resources.__all__, *sync_resources.__all__}
    assert resource_names <= set(lamina.__all__), sorted(resource_names - set(lamina.__all__))
    returned: set[str] = set()
    for name in lamina.__all__:
        value = getattr(lamina, name)
        if not isinstance(value, type):
            continue
        for member in vars(value).values():
            function = member.fget if isinstance(member, property) else member
            annotation = getattr(function, "__annotations__", {}).get("return")
            if isinstance(annotation, str):
                returned.update(
                    word for word in re.findall(r"\w+", annotation) if word in resource_names
                )
    assert {
        "AsyncReadOnlyObjects",
        "AsyncCommits",
        "Repositories",
        "Organizations",
        "AsyncApprovals",
        "AuditLog",
    } <= returned
    assert returned <= set(lamina.__all__)
