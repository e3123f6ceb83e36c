"""Monitoring objects: CRD schemas, the PrometheusRule equals deploy/prometheus/rules, and the autoscalers read a
metric the worker really exports under the name the adapter serves."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_helpers import OVERLAYS, ROOT, find, one, requires_kubectl

pytestmark = requires_kubectl

SCHEMAS = Path(__file__).parent / "schemas"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
CRD_SCHEMAS = {
    "ServiceMonitor": "servicemonitor.json",
    "PrometheusRule": "prometheusrule.json",
    "ScaledObject": "scaledobject.json",
}


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_k8s_monitoring", ROOT / "scripts" / "gen_k8s_monitoring.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / CRD_SCHEMAS[kind]).read_text())
    return loaded


def rule_files() -> list[Path]:
    return sorted([*RULES_DIR.glob("*.yml"), *RULES_DIR.glob("*.yaml")])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crd_objects_match_their_schemas(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for obj in rendered[overlay]:
        if obj["kind"] in CRD_SCHEMAS:
            jsonschema.validate(obj, schema(obj["kind"]))


def test_crd_schemas_reject_what_the_operators_would(rendered: dict[str, list[dict[str, Any]]]) -> None:
    monitor = one(rendered["production"], "ServiceMonitor")
    broken = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "http", "intervall": "15s"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema("ServiceMonitor"))
    scaled = one(rendered["production-keda"], "ScaledObject")
    trigger = {"type": "prometheus", "metadata": {"serverAddress": "http://p:9090", "query": "up"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**scaled, "spec": {**scaled["spec"], "triggers": [trigger]}}, schema("ScaledObject")
        )
    rule = {"name": "g", "rules": [{"alert": "A", "record": "b", "expr": "up"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": "x"},
                "spec": {"groups": [rule]},
            },
            schema("PrometheusRule"),
        )


def test_generated_files_are_up_to_date() -> None:
    stale = load_generator().stale_paths()
    assert stale == [], "re-run scripts/gen_k8s_monitoring.py: " + ", ".join(str(p) for p in stale)


@pytest.mark.parametrize("overlay", ["production", "production-keda"])
def test_prometheus_rules_equal_the_deploy_rules(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    files = rule_files()
    if not files:
        pytest.skip("deploy/prometheus/rules has no rules files yet")
    rendered_groups = [
        g for rule in find(rendered[overlay], "PrometheusRule") for g in rule["spec"]["groups"]
    ]
    source_groups = [g for path in files for g in yaml.safe_load(path.read_text())["groups"]]
    assert rendered_groups == source_groups


def test_servicemonitor_scrapes_the_worker_service_as_the_rules_expect(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["production"]
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service", "voicefleet-worker")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    job = next(r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job")
    selected_jobs = {
        match for path in rule_files() for match in re.findall(r'job="([^"]+)"', path.read_text())
    }
    assert selected_jobs <= {job}, "alerts that select another job would never see these workers"


def test_dashboards_ship_as_labelled_configmaps(rendered: dict[str, list[dict[str, Any]]]) -> None:
    sources = sorted(DASHBOARDS_DIR.glob("*.json"))
    if not sources:
        pytest.skip("deploy/grafana/dashboards has no dashboards yet")
    maps = [
        cm
        for cm in find(rendered["production"], "ConfigMap")
        if cm["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert all(cm["metadata"]["labels"]["grafana_dashboard"] == "1" for cm in maps)
    shipped = {name: text for cm in maps for name, text in cm["data"].items()}
    assert shipped == {p.name: p.read_text() for p in sources}


def test_autoscalers_read_the_live_sessions_metric_the_worker_exports(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    hpa = one(rendered["production"], "HorizontalPodAutoscaler")
    pods_metric = next(m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    name = pods_metric["metric"]["name"]
    adapter = yaml.safe_load((ROOT / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    served = {rule["name"]["as"]: rule for rule in adapter["rules"]["custom"]}
    assert name in served, "prometheus-adapter must serve the metric the HPA asks for"
    assert served[name]["seriesQuery"].startswith(name + "{")
    assert set(served[name]["resources"]["overrides"]) == {"namespace", "pod"}

    scaled = one(rendered["production-keda"], "ScaledObject")
    trigger = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    assert re.search(
        rf"\b{name}\{{namespace=\"{scaled['metadata']['namespace']}\"\}}", trigger["metadata"]["query"]
    )
    assert trigger["metadata"]["threshold"] == pods_metric["target"]["averageValue"]

    if importlib.util.find_spec("voicefleet.observability.metrics") is None:
        pytest.skip(
            "voicefleet.observability.metrics is not in this build, so the exported names are unknown"
        )
    from voicefleet.observability.metrics import FleetMetrics

    body, _ = FleetMetrics().render()
    assert re.search(rf"^# TYPE {name} gauge$", body.decode(), re.MULTILINE)
