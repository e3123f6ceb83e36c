"""The rendered overlays are valid Kubernetes objects and agree with what the worker really serves and reads."""

from __future__ import annotations

import importlib
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_helpers import OVERLAYS, ROOT, find, one, requires_kubectl, worker_container, worker_deployment
from kubernetes_validate.utils import latest_version

from voicefleet.config import Settings

pytestmark = requires_kubectl

# Objects of these kinds come from CRDs; tests/deploy/test_deploy_monitoring.py checks them against schemas.
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"}
DOCUMENTED_PATHS = {"/v1/realtime", "/healthz", "/readyz", "/metrics"}
SECRET_TEMPLATES = [
    ROOT / "k8s/base/secret.template.yaml",
    ROOT / "k8s/components/redis-managed/redis-secret.template.yaml",
]
# Names the worker does not read as VOICEFLEET_<FIELD>, because Settings derives these fields differently.
DERIVED_FIELDS = {"api_key_hashes", "token_secret", "openai_api_key"}
KNOWN_ENV = {f"VOICEFLEET_{f.name.upper()}" for f in fields(Settings) if f.name not in DERIVED_FIELDS} | {
    "OPENAI_API_KEY",
    "VOICEFLEET_API_KEYS",
    "VOICEFLEET_TOKEN_SECRET",
}


def served_paths() -> set[str]:
    """The worker app's routes when it can be built, else its route strings in source, else the contract."""
    try:
        module = importlib.import_module("voicefleet.worker.app")
    except ImportError:
        return DOCUMENTED_PATHS
    factory = getattr(module, "create_app", None)
    state_type = getattr(module, "WorkerState", None)
    if callable(factory) and state_type is not None:
        try:
            app = factory(state_type(Settings()))
        except Exception:
            # The app's constructor changed shape; its route strings in source are still evidence.
            app = None
        paths = {getattr(route, "path", "") for route in getattr(app, "routes", [])} - {""}
        if paths:
            return paths
    source = "\n".join(p.read_text() for p in Path(module.__file__ or "").parent.glob("*.py"))
    return set(re.findall(r"""["'](/[a-z0-9_/]*)["']""", source))


def secret_templates() -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for path in SECRET_TEMPLATES
        for doc in yaml.safe_load_all(path.read_text())
    }


def container_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Every variable the worker container gets: its env list and the keys of envFrom sources (value or '')."""
    container = worker_container(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            data = secret_templates()[source["secretRef"]["name"]]["stringData"]
        env.update(data)
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "")
    return env


def prestop_sleep_s(container: dict[str, Any]) -> int:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    version = latest_version()
    checked = 0
    for obj in rendered[overlay]:
        if obj["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 7


def test_secret_templates_validate_and_hold_placeholders_only() -> None:
    for secret in secret_templates().values():
        kubernetes_validate.validate(secret, latest_version(), strict=True)
        for value in secret["stringData"].values():
            assert "<" in value and ">" in value, f"{secret['metadata']['name']} must hold placeholders"


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    broken = dict(worker_deployment(rendered["production"]))
    broken["spec"] = {**broken["spec"], "replica": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_env_name_is_a_setting_the_worker_reads(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    names = set(container_env(rendered[overlay]))
    assert names - KNOWN_ENV == set()
    assert {
        "OPENAI_API_KEY",
        "VOICEFLEET_TOKEN_SECRET",
        "VOICEFLEET_API_KEYS",
        "VOICEFLEET_REDIS_URL",
    } <= names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configured_values_parse_as_settings(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    env = container_env(rendered[overlay])
    settings = Settings.from_env(env)
    assert settings.drain_timeout_s == float(env["VOICEFLEET_DRAIN_TIMEOUT_S"])
    assert settings.max_sessions == int(env["VOICEFLEET_MAX_SESSIONS"])
    assert settings.log_format == "json", "logs are collected from stdout; JSON keeps them parseable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_match_the_worker(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objects = rendered[overlay]
    container = worker_container(objects)
    port = Settings().port
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    assert container["args"][container["args"].index("--port") + 1] == str(port)
    assert container["args"][:1] == ["worker"]
    paths = served_paths()
    probes = {
        name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in paths
        assert probe["port"] in (port, "http")
    annotations = worker_deployment(objects)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] in paths
    service = one(objects, "Service", "voicefleet-worker")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    for ingress in find(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["path"] in paths
                assert path["backend"]["service"]["name"] == "voicefleet-worker"
                assert path["backend"]["service"]["port"]["name"] in {
                    p["name"] for p in service["spec"]["ports"]
                }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_outlasts_prestop_plus_drain(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    pod = worker_deployment(objects)["spec"]["template"]["spec"]
    drain = Settings.from_env(container_env(objects)).drain_timeout_s
    sleep = prestop_sleep_s(worker_container(objects))
    assert sleep >= 5, "endpoints need a few seconds to drop the pod before SIGTERM"
    assert pod["terminationGracePeriodSeconds"] > drain + sleep


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for deployment in find(rendered[overlay], "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {m["name"] for m in container.get("volumeMounts", [])} <= writable
    worker_mounts = {m["mountPath"] for m in worker_container(rendered[overlay])["volumeMounts"]}
    assert "/tmp" in worker_mounts, "the worker's TMPDIR must be writable under a read-only root"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_find_the_worker_pods(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objects = rendered[overlay]
    deployment = worker_deployment(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one(objects, "Service", "voicefleet-worker")["spec"]["selector"].items() <= pod_labels.items()
    assert (
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    )
    for policy in find(objects, "NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    for scaler in find(objects, "HorizontalPodAutoscaler") + find(objects, "ScaledObject"):
        assert scaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] in {
        o["metadata"]["name"] for o in find(objects, "ServiceAccount")
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_is_sticky_and_keeps_websockets_open(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    annotations = one(rendered[overlay], "Ingress")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "upstream-hash-by"] in {"$remote_addr", "$binary_remote_addr"}
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    assert re.fullmatch(r"\d+[kmg]?", annotations[prefix + "proxy-body-size"])


def test_dev_runs_one_worker_with_in_cluster_redis(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["dev"]
    assert worker_deployment(objects)["spec"]["replicas"] == 1
    assert find(objects, "HorizontalPodAutoscaler") == []
    redis_service = one(objects, "Service", "voicefleet-redis")
    url = container_env(objects)["VOICEFLEET_REDIS_URL"]
    assert url.startswith(
        f"redis://{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}"
    )


@pytest.mark.parametrize("overlay", ["production", "production-keda"])
def test_production_scales_from_three_and_locks_the_network(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    deployment = worker_deployment(objects)
    # An autoscaler owns the count; a replicas field would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    scalers = find(objects, "HorizontalPodAutoscaler") + find(objects, "ScaledObject")
    assert len(scalers) == 1, "exactly one autoscaler may own the Deployment"
    spec = scalers[0]["spec"]
    assert spec.get("minReplicas", spec.get("minReplicaCount", 0)) >= 3
    assert one(objects, "PodDisruptionBudget")
    assert find(objects, "Deployment", "voicefleet-redis") == []
    assert "VOICEFLEET_REDIS_URL" in {e["name"] for e in worker_container(objects)["env"]}
    assert not container_env(objects).get("VOICEFLEET_REDIS_URL"), "the managed URL comes from a Secret"
    assert one(objects, "ServiceMonitor")
    assert not deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":latest")
    policy = one(objects, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 443, 6379} <= egress_ports
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports <= {"http", Settings().port}


def test_hpa_scales_on_live_sessions_with_cpu_fallback(rendered: dict[str, list[dict[str, Any]]]) -> None:
    hpa = one(rendered["production"], "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type["Pods"]["pods"]["metric"]["name"] == "voicefleet_live_sessions"
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    per_pod = int(by_type["Pods"]["pods"]["target"]["averageValue"])
    max_sessions = Settings.from_env(container_env(rendered["production"])).max_sessions
    assert per_pod < max_sessions, "the target must leave room below the hard session limit"
