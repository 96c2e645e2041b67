"""The domains stay below the HTTP layer: no web framework, nothing of the API layer, and one
error root per domain."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import lamina_server
from lamina_server.governance.errors import GovernanceError
from lamina_server.identity import IdentityError
from lamina_server.repositories import RepositoryError
from lamina_server.secrets import SecretsError
from lamina_server.storage.blobs import BlobError
from lamina_server.storage.schema import SchemaError
from lamina_server.versioning import VersioningError

SERVER = Path(lamina_server.__file__).parent
DOMAINS: dict[str, type[Exception] | tuple[type[Exception], ...]] = {
    "versioning": VersioningError,
    # Two stores: the blobs, and the metadata database's schema (raised at startup and by
    # `lamina server migrate`, never in a request).
    "storage": (BlobError, SchemaError),
    "identity": IdentityError,
    "repositories": RepositoryError,
    "secrets": SecretsError,
    "governance": GovernanceError,
}
# Below the API layer too, without errors of their own.
NEUTRAL = ("authz", "principals.py", "cache.py")
FORBIDDEN = ("fastapi", "starlette", "lamina_server.api", "lamina_server.app")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
    return found


@pytest.mark.parametrize("domain", sorted(DOMAINS) + list(NEUTRAL))
def test_domains_import_no_web_framework_and_no_http_errors(domain: str) -> None:
    root = SERVER / domain
    paths = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert paths and all(path.exists() for path in paths)
    offending = {
        f"{path.relative_to(SERVER)}: {module}"
        for path in paths
        for module in _imports(path)
        if module.startswith(FORBIDDEN)
    }
    assert offending == set()


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_each_domain_has_one_error_root(domain: str) -> None:
    package = importlib.import_module(f"lamina_server.{domain}")
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    ]
    errors = {
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and not issubclass(value, DOMAINS[domain])
    }
    assert errors == set()
