"""The deployment files in ``deploy/`` (docs/deploy.md), checked offline.

They cannot be started here (no Docker, no cluster), so this keeps them correct: the YAML
parses; the compose files validate against the Compose Specification schema (as bundled by
check-jsonschema, its ``vendor.compose-spec``); the Kubernetes manifests validate, strictly,
against the Kubernetes schemas bundled by kubernetes-validate; and the files agree with each
other and with the code: every ``lamina server`` argument parses with the real CLI, the extras
the image installs exist, ports and service names match between compose, nginx and the
manifests, and nothing overrides the image's entrypoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lamina_server import cli

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.sandboxes.yml")
KUBERNETES_VERSION = "1.30"  # the oldest minor the manifests are meant for
IMAGE_NAMES = ("lamina-server",)
SERVER_PORT = 8710
DATA_DIR = "/var/lib/lamina/data"

_COMPOSE_VARIABLE = re.compile(r"\$\{[^}]*\}")  # ${NAME}, ${NAME:?message}, ...
_KUBERNETES_VARIABLE = re.compile(r"\$\([A-Z_][A-Z0-9_]*\)")  # $(NAME) in args


def _yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose(name: str) -> dict[str, Any]:
    (document,) = _yaml_documents(DEPLOY / name)
    return document  # type: ignore[no-any-return]


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    paths = sorted((DEPLOY / "kubernetes").rglob("*.yaml"))
    return [(path, doc) for path in paths for doc in _yaml_documents(path)]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    found = [
        doc for path, doc in _manifests() if doc["kind"] == kind and "examples" not in path.parts
    ]
    assert found, f"no {kind} in deploy/kubernetes/"
    return found


def _lamina_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose("docker-compose.yml")["services"]
    return {
        name: service
        for name, service in services.items()
        if service.get("image", "").partition(":")[0] in IMAGE_NAMES
    }


def _lamina_containers() -> list[dict[str, Any]]:
    containers = []
    for kind in ("Deployment", "Job"):
        for doc in _of_kind(kind):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].partition(":")[0] in IMAGE_NAMES:
                    containers.append(container)
    return containers


def _substituted(args: list[str]) -> list[str]:
    """Arguments with compose's ``${...}`` and Kubernetes' ``$(...)`` replaced by a value."""
    return [_KUBERNETES_VARIABLE.sub("x", _COMPOSE_VARIABLE.sub("x", str(arg))) for arg in args]


def _subcommand_options(name: str) -> set[str] | None:
    """The options of ``lamina server NAME`` from its help, or None when there is no such
    subcommand (the serve parser answers the help instead)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([name, "--help"], prog="lamina server")
    if not out.getvalue().startswith(f"usage: lamina server {name}"):
        return None
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.getvalue()))


def _check_lamina_args(args: list[str], where: str) -> None:
    args = _substituted(args)
    if args and not args[0].startswith("-"):
        name = args[0]
        options = _subcommand_options(name)
        assert options is not None, f"{where}: no subcommand {name!r}"
        used = {arg for arg in args[1:] if arg.startswith("--")}
        assert used <= options, f"{where}: {name} has no {sorted(used - options)}"
        return
    parser = cli._serve_parser("lamina server")
    try:
        parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: `lamina server {' '.join(args)}` does not parse")


def test_the_yaml_parses() -> None:
    paths = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert len(paths) >= 9
    for path in paths:
        assert _yaml_documents(path), path


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose(name))
    ]
    assert not errors, errors


def test_the_sandboxes_override_only_touches_lamina_replicas() -> None:
    base = _compose("docker-compose.yml")["services"]
    override = _compose("docker-compose.sandboxes.yml")["services"]
    replicas = {name for name, service in _lamina_services().items() if "volumes" in service}
    assert set(override) == replicas == {"lamina-1", "lamina-2"}
    assert all(name in base for name in override)


def test_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    manifests = _manifests()
    kinds = {doc["kind"] for _, doc in manifests}
    assert kinds >= {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Ingress",
        "Job",
        "PodDisruptionBudget",
    }
    for path, doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} {doc['kind']}: {list(error.path)}: {error.message}")


def test_every_lamina_command_line_parses() -> None:
    for name, service in _lamina_services().items():
        _check_lamina_args(service["command"], f"docker-compose.yml {name}")
    for container in _lamina_containers():
        _check_lamina_args(container["args"], f"kubernetes {container['name']}")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    _check_lamina_args(json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M)[1]), "Dockerfile")


def test_the_entrypoint_is_lamina_server_everywhere() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", dockerfile, re.M)[1])
    assert entrypoint == ["lamina", "server"]
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    for name, service in _lamina_services().items():
        assert "entrypoint" not in service, name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    for container in _lamina_containers():
        assert "command" not in container, container["name"]  # args only: the entrypoint stays


def test_the_image_installs_extras_that_exist() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    extras = set(re.search(r"pip install [^\n]*'\.\[([a-z0-9,]+)\]'", dockerfile)[1].split(","))
    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    assert extras <= declared, extras - declared


def test_ports_and_names_agree() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    services = _compose("docker-compose.yml")["services"]
    upstream = re.search(r"upstream lamina \{(.*?)\}", nginx, re.S)[1]
    backends = set(re.findall(r"server ([\w-]+):(\d+)", upstream))
    replicas = {name for name, service in _lamina_services().items() if "volumes" in service}
    assert backends == {(name, str(SERVER_PORT)) for name in replicas}
    for name in replicas:
        args = services[name]["command"]
        assert args[args.index("--port") + 1] == str(SERVER_PORT)
        assert f"{name}-data:{DATA_DIR}" in services[name]["volumes"]
    s3 = re.search(r"upstream seaweedfs_s3 \{\s*server ([\w-]+):(\d+);", nginx)
    assert s3 is not None and s3[1] in services
    assert f"-s3.port={s3[2]}" in services[s3[1]]["command"]
    listens = set(re.findall(r"listen (\d+);", nginx))
    published = {port.partition(":")[2] for port in services["nginx"]["ports"]}
    assert listens == published
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    # Websockets upgraded for /exec and /terminal; uploads streamed, not buffered.
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "(exec|terminal)" in nginx
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;"):
        assert directive in nginx

    (deployment,) = _of_kind("Deployment")
    (service,) = _of_kind("Service")
    (ingress,) = _of_kind("Ingress")
    (pdb,) = _of_kind("PodDisruptionBudget")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == SERVER_PORT
    assert container["args"][container["args"].index("--port") + 1] == str(SERVER_PORT)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    labels = pod["metadata"]["labels"]
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] == service["spec"]["ports"][0]["name"]
    assert all(
        container["resources"].keys() == {"requests", "limits"}
        for container in _lamina_containers()
    )


def test_settings_and_secrets_are_where_the_manifests_look() -> None:
    configmaps = {doc["metadata"]["name"]: doc for doc in _of_kind("ConfigMap")}
    secrets = {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] == "Secret"}
    for container in _lamina_containers():
        provided = {variable["name"] for variable in container.get("env", [])}
        for source in container["envFrom"]:
            if "configMapRef" in source:
                provided |= set(configmaps[source["configMapRef"]["name"]]["data"])
            else:
                provided |= set(secrets[source["secretRef"]["name"]]["stringData"])
        used = {
            match[2:-1] for arg in container["args"] for match in _KUBERNETES_VARIABLE.findall(arg)
        }
        assert used <= provided, (container["name"], used - provided)
    (deployment,) = _of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (keys,) = [volume for volume in pod["volumes"] if "secret" in volume]
    key_files = set(secrets[keys["secret"]["secretName"]]["stringData"])
    (container,) = pod["containers"]
    mounted = {
        m["subPath"]: m["mountPath"] for m in container["volumeMounts"] if m["name"] == keys["name"]
    }
    assert mounted == {name: f"{DATA_DIR}/{name}" for name in key_files}
    compose_keys = {
        secret["target"] for service in _lamina_services().values() for secret in service["secrets"]
    }
    assert compose_keys == set(mounted.values())
