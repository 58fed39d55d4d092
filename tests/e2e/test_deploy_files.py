"""The deployment files agree with iap and with each other.

No Docker engine or Kubernetes cluster runs here, so these checks read the files: every ``IAP_*``
name they use is a real setting, the values they give make a valid configuration, the roles
run the commands and share the settings they should, the proxy's body limit matches the upload
limit, and Debian's nginx accepts the nginx site files (``nginx -t``). The topology test runs
those nginx files for real.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from iap.cli.main import PROGRESS_VARIABLE
from iap.cli.main import app as cli
from iap.config import Settings
from iap.images.upload_form import FORM_OVERHEAD_BYTES
from tests.e2e.nginx import (
    NGINX_DIR,
    REPO,
    check_config,
    client_max_body_size,
    main_config,
    render_site,
    require_nginx,
    self_signed_certificate,
)

COMPOSE = REPO / "compose.yaml"
COMPOSE_TLS = REPO / "deploy" / "compose.tls.yaml"
DOCKERFILE = REPO / "Dockerfile"
K8S = REPO / "deploy" / "k8s"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
SETTINGS = set(Settings.model_fields)
IAP_ROLES = {"api": "serve", "worker": "worker", "migrate": "migrate"}
# What the compose file's required variables are set to here (docs/deployment.md makes them).
COMPOSE_SECRETS = {
    "IAP_SECRET_KEY": "k" * 43,
    "POSTGRES_PASSWORD": "p" * 43,
    "RABBITMQ_PASSWORD": "r" * 43,
    "MINIO_ROOT_PASSWORD": "m" * 43,
    "TLS_DIR": "/etc/iap/tls",
}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution: ``${X}``, ``${X:-default}``, ``${X:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in variables and (variables[name] or not (op or "").startswith(":")):
            return variables[name]
        if op and op.endswith("-"):
            return str(arg)
        raise AssertionError(f"${{{name}}} has no value and no default ({arg})")

    return INTERPOLATION.sub(substitute, value)


def load_compose(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def k8s_documents() -> list[dict[str, Any]]:
    """Every object the kustomization (and the ones it includes) lists."""

    def collect(folder: Path) -> list[dict[str, Any]]:
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        found: list[dict[str, Any]] = []
        for resource in kustomization["resources"]:
            path = folder / resource
            assert path.exists(), f"{folder}/kustomization.yaml lists a missing {resource}"
            if path.is_dir():
                found += collect(path)
            else:
                found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        return found

    return collect(K8S)


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def iap_containers() -> dict[str, dict[str, Any]]:
    """The containers that run the iap image, by object name."""
    containers: dict[str, dict[str, Any]] = {}
    for doc in k8s_documents():
        if doc["kind"] not in {"Deployment", "StatefulSet", "Job", "CronJob"}:
            continue
        for container in pod_spec(doc)["containers"]:
            if container["image"] == "iap":
                containers[doc["metadata"]["name"]] = container
    return containers


def documented_secret_keys() -> set[str]:
    """The keys of the iap-secrets Secret, as docs/deployment.md creates it."""
    text = DEPLOYMENT_DOC.read_text()
    return set(re.findall(r"--from-literal=([A-Z0-9_]+)=", text))


# --- every IAP_ name is a setting -----------------------------------------------------------

# The CLI's own variables (server URL, credentials, progress bars): read by `iap`, not the service.
CLI_VARIABLES = {
    envvar
    for command in typer.main.get_command(cli).commands.values()  # type: ignore[attr-defined]
    for param in command.params
    for envvar in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
} | {PROGRESS_VARIABLE}


@pytest.mark.parametrize(
    "path",
    [
        COMPOSE,
        COMPOSE_TLS,
        DOCKERFILE,
        DEPLOYMENT_DOC,
        REPO / "deploy" / "create_bucket.py",
        *sorted(K8S.rglob("*.yaml")),
        *sorted(NGINX_DIR.glob("*.conf")),
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_iap_variable_named_is_a_setting(path: Path) -> None:
    names = set(re.findall(r"\bIAP_([A-Z0-9_]+)", path.read_text()))
    unknown = sorted(
        f"IAP_{n}" for n in names if n.lower() not in SETTINGS and f"IAP_{n}" not in CLI_VARIABLES
    )
    assert not unknown, f"{path.name} names variables iap does not read: {unknown}"


# --- compose --------------------------------------------------------------------------------


def test_compose_has_the_whole_topology() -> None:
    services = load_compose(COMPOSE)["services"]
    assert set(services) == {
        "nginx",
        "api",
        "worker",
        "migrate",
        "bucket",
        "postgres",
        "redis",
        "rabbitmq",
        "minio",
    }
    for name, role in IAP_ROLES.items():
        assert services[name]["command"] == ["iap", role]
    # The one image, built from this folder, for every iap role.
    iap_services = [*IAP_ROLES, "bucket"]
    assert len({services[s]["image"] for s in iap_services}) == 1
    assert all(services[s]["build"] == "." for s in iap_services)


def test_compose_starts_things_in_order() -> None:
    services = load_compose(COMPOSE)["services"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["bucket"]["condition"] == "service_completed_successfully"
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"
    for name in ("migrate", "bucket"):
        assert services[name]["restart"] == "no"
    # The image's HEALTHCHECK asks /healthz, which only the API serves.
    for name in ("worker", "migrate", "bucket"):
        assert services[name]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["api"]
    for name in ("postgres", "redis", "rabbitmq", "minio"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_compose_gives_every_iap_role_the_same_valid_settings() -> None:
    services = load_compose(COMPOSE)["services"]
    shared = services["worker"]["environment"]
    for name in ("migrate", "bucket"):
        assert services[name]["environment"] == shared
    api = dict(services["api"]["environment"])
    assert api.pop("IAP_FORWARDED_ALLOW_IPS")
    assert api == shared
    values = {
        k.removeprefix("IAP_").lower(): interpolate(str(v), COMPOSE_SECRETS)
        for k, v in services["api"]["environment"].items()
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert not settings.is_sqlite
    assert settings.broker_url is not None
    assert settings.broker_url.startswith("amqp://")
    assert settings.redis_url is not None
    assert settings.resolved_storage_url.startswith("s3://")
    assert settings.signing_key  # a secret key iap accepts


def test_compose_api_trusts_forwarded_headers_from_nginxs_network_only() -> None:
    compose = load_compose(COMPOSE)
    services = compose["services"]
    edge = [name for name, s in services.items() if "edge" in s.get("networks", [])]
    assert sorted(edge) == ["api", "nginx"]
    subnet = interpolate(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"], {})
    trusted = interpolate(services["api"]["environment"]["IAP_FORWARDED_ALLOW_IPS"], {})
    assert trusted == subnet
    assert "ports" not in services["api"]  # reachable only through nginx


def test_compose_nginx_runs_the_site_files_where_they_include_each_other() -> None:
    plain = load_compose(COMPOSE)["services"]["nginx"]
    tls = load_compose(COMPOSE_TLS)["services"]["nginx"]

    def mounts(volumes: list[str]) -> dict[str, str]:
        pairs = (interpolate(v, COMPOSE_SECRETS).split(":")[:2] for v in volumes)
        return {target: source for source, target in pairs}

    base = mounts(plain["volumes"])
    override = mounts(tls["volumes"])
    assert base["/etc/nginx/conf.d/default.conf"] == "./deploy/nginx/iap.conf"
    assert override["/etc/nginx/conf.d/default.conf"] == "./deploy/nginx/iap-tls.conf"
    assert base["/etc/nginx/iap/iap-proxy.conf"] == "./deploy/nginx/iap-proxy.conf"
    assert override["/etc/nginx/certs"] == COMPOSE_SECRETS["TLS_DIR"]
    for source in [*base.values(), override["/etc/nginx/conf.d/default.conf"]]:
        assert (REPO / source).is_file(), source
    for site in ("iap.conf", "iap-tls.conf"):
        assert "include /etc/nginx/iap/iap-proxy.conf;" in (NGINX_DIR / site).read_text()
    assert "443" in tls["ports"][0]


def test_the_proxies_admit_exactly_what_the_api_accepts() -> None:
    """client_max_body_size = IAP_MAX_UPLOAD_BYTES + the multipart framing the API allows for:
    nginx never cuts off a file the API would take, and never passes one it must refuse."""
    compose_limit = int(load_compose(COMPOSE)["x-iap-environment"]["IAP_MAX_UPLOAD_BYTES"])
    k8s_limit = int(k8s_object("ConfigMap", "iap-config")["data"]["IAP_MAX_UPLOAD_BYTES"])
    ingress = k8s_object("Ingress", "iap")["metadata"]["annotations"]
    assert compose_limit == k8s_limit
    assert client_max_body_size() == compose_limit + FORM_OVERHEAD_BYTES
    body_size = ingress["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body_size) == k8s_limit + FORM_OVERHEAD_BYTES


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_builds_from_the_lock_in_stages_and_runs_as_a_user() -> None:
    steps = dockerfile_instructions()
    args = dict(arg.split("=", 1) for kind, arg in steps if kind == "ARG" and "=" in arg)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    stages = [value for kind, value in steps if kind == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    syncs = [value for kind, value in steps if kind == "RUN" and "uv sync" in value]
    assert syncs
    assert all("--locked" in s and "--no-dev" in s for s in syncs)
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert makefile_uv is not None
    assert args["UV_VERSION"] == makefile_uv.group(1)  # the uv the project is developed with
    users = [value for kind, value in steps if kind == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthcheck = next(value for kind, value in steps if kind == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert next(value for kind, value in steps if kind == "CMD") == '["iap", "serve"]'
    env = " ".join(value for kind, value in steps if kind == "ENV")
    assert "IAP_HOST=0.0.0.0" in env


def test_dockerfile_copies_only_what_the_build_context_holds() -> None:
    """Everything the Dockerfile copies from the context exists and is let through by
    .dockerignore (which excludes all else); the bucket script lands where compose and the
    Kubernetes Job run it."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule.removeprefix("!") for rule in rules if rule.startswith("!")}
    copies = [
        value
        for kind, value in dockerfile_instructions()
        if kind == "COPY" and not value.startswith("--from")
    ]
    destinations = {}
    for copy in copies:
        *sources, destination = shlex.split(copy)
        for source in sources:
            assert (REPO / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
            destinations[source] = destination
    script = destinations["deploy/create_bucket.py"]
    assert load_compose(COMPOSE)["services"]["bucket"]["command"] == ["python", script]
    assert iap_containers()["iap-bucket"]["command"] == ["python", script]


# --- Kubernetes -----------------------------------------------------------------------------


def test_k8s_has_the_whole_topology() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in k8s_documents()}
    assert {
        ("Deployment", "iap-api"),
        ("Deployment", "iap-worker"),
        ("Job", "iap-migrate"),
        ("Job", "iap-bucket"),
        ("CronJob", "iap-gc"),
        ("Service", "iap-api"),
        ("ConfigMap", "iap-config"),
        ("Ingress", "iap"),
        ("Ingress", "iap-events"),
        ("Ingress", "iap-metrics"),
        ("StatefulSet", "iap-postgres"),
        ("Deployment", "iap-redis"),
        ("StatefulSet", "iap-rabbitmq"),
        ("StatefulSet", "iap-minio"),
    } <= kinds
    containers = iap_containers()
    assert containers["iap-api"]["command"] == ["iap", "serve"]
    assert containers["iap-worker"]["command"] == ["iap", "worker"]
    assert containers["iap-migrate"]["command"] == ["iap", "migrate"]
    assert containers["iap-gc"]["command"] == ["iap", "gc"]


def test_k8s_iap_roles_share_one_configuration() -> None:
    containers = iap_containers()
    assert len(containers) == 5
    expected = [{"configMapRef": {"name": "iap-config"}}, {"secretRef": {"name": "iap-secrets"}}]
    for name, container in containers.items():
        assert container["envFrom"] == expected, name
        assert "env" not in container, f"{name}: settings belong in iap-config or iap-secrets"
    for doc in k8s_documents():
        if doc["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"}:
            # Service links would add IAP_*_PORT=tcp://... variables to the environment.
            assert pod_spec(doc)["enableServiceLinks"] is False, doc["metadata"]["name"]


def test_k8s_settings_are_valid_and_the_documented_secret_completes_them() -> None:
    config = k8s_object("ConfigMap", "iap-config")["data"]
    secret_keys = documented_secret_keys()
    secret_settings = {k for k in secret_keys if k.startswith("IAP_")}
    assert secret_settings == {
        "IAP_SECRET_KEY",
        "IAP_DATABASE_URL",
        "IAP_BROKER_URL",
        "IAP_S3_ACCESS_KEY_ID",
        "IAP_S3_SECRET_ACCESS_KEY",
    }
    assert not set(config) & secret_settings
    values = {k.removeprefix("IAP_").lower(): v for k, v in config.items()}
    settings = Settings(
        _env_file=None,
        **values,
        secret_key="s" * 43,
        database_url="postgresql://iap:pw@iap-postgres:5432/iap",
        broker_url="amqp://iap:pw@iap-rabbitmq:5672/%2F",
    )
    assert settings.resolved_storage_url.startswith("s3://")
    # The backing services read their passwords from the same Secret.
    for doc in k8s_documents():
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            for container in pod_spec(doc)["containers"]:
                for variable in container.get("env", []):
                    ref = variable.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "iap-secrets"
                        assert ref["key"] in secret_keys, f"{ref['key']} is not documented"


def test_k8s_api_is_probed_on_healthz_and_readyz() -> None:
    api = iap_containers()["iap-api"]
    port = api["ports"][0]
    assert port == {"name": "http", "containerPort": 8000}
    assert "IAP_PORT=8000" in " ".join(v for k, v in dockerfile_instructions() if k == "ENV")
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert api[probe]["httpGet"] == {"path": path, "port": "http"}


def test_k8s_services_and_ingresses_point_at_what_exists() -> None:
    docs = k8s_documents()
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for service in services.values():
        selector = service["spec"]["selector"]
        targets = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in pod_spec(targets[0])["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for name in ("iap", "iap-events", "iap-metrics"):
        ingress = k8s_object("Ingress", name)
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"]["name"] in {
                    p["name"] for p in services[backend["name"]]["spec"]["ports"]
                }
    events = k8s_object("Ingress", "iap-events")
    annotations = events["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert events["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/events"


# --- nginx ----------------------------------------------------------------------------------


@pytest.mark.parametrize("site", ["iap.conf", "iap-tls.conf"])
def test_nginx_accepts_the_site(site: str, tmp_path: Path) -> None:
    nginx = require_nginx()
    rendered = render_site(
        site,
        tmp_path,
        upstreams=["127.0.0.1:18001", "127.0.0.1:18002"],
        http_port=18080,
        https_port=18443,
        certificate=self_signed_certificate(tmp_path / "certs"),
    )
    result = check_config(nginx, main_config(tmp_path, rendered))
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_nginx_sites_share_the_upstream_and_stream_events_unbuffered() -> None:
    upstream = re.compile(r"^upstream iap_api \{.*?^\}", re.MULTILINE | re.DOTALL)
    blocks = {
        site: upstream.findall((NGINX_DIR / site).read_text())
        for site in ("iap.conf", "iap-tls.conf")
    }
    assert len(blocks["iap.conf"]) == 1
    assert blocks["iap.conf"] == blocks["iap-tls.conf"]
    proxy = (NGINX_DIR / "iap-proxy.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in proxy
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in proxy
    events = re.search(r"location = /events \{(.*?)\}", proxy, re.DOTALL)
    assert events is not None
    assert "proxy_buffering off;" in events.group(1)
    timeout = re.search(r"proxy_read_timeout (\d+)h;", events.group(1))
    assert timeout is not None  # hours: far above the API's 15 s heartbeat
    metrics = re.search(r"location = /metrics \{(.*?)\}", proxy, re.DOTALL)
    assert metrics is not None
    statements = [part.strip() for part in metrics.group(1).split(";")]
    access = [part for part in statements if part.startswith(("allow ", "deny "))]
    assert access[-1] == "deny all"  # everyone not allowed above
    assert "allow all" not in access
    assert "deny all" not in proxy.replace(metrics.group(1), "")


# --- the compose files against the Compose Specification's schema ----------------------------


def check_compose_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the compose-spec schema it ships (no download): what
    `docker compose config` would refuse as malformed, short of resolving the variables."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_files_follow_the_compose_specification() -> None:
    result = check_compose_schema(COMPOSE, COMPOSE_TLS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_catches_a_malformed_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["api"]["depends_on"] = 42  # neither a list nor a mapping
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = check_compose_schema(path)
    assert result.returncode != 0
    assert "depends_on" in result.stdout + result.stderr
