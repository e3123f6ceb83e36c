"""The Prometheus config, rules and alerts pass promtool, and their promtool unit tests pass."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prom_harness import PROMETHEUS_DIR, RULES_DIR, needs_promtool, promtool

from voicefleet.observability.expressions import every_expression

pytestmark = needs_promtool


def test_local_config_is_valid(tmp_path: Path) -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_config_is_valid(tmp_path: Path) -> None:
    result = promtool("check", "config", "prometheus-kubernetes.yml")
    output = result.stdout + result.stderr
    if "kubernetes_sd_configs not found" not in output:
        assert result.returncode == 0, output
        return
    # This promtool was built without Kubernetes discovery (Debian's is): check everything else in the file
    # -- globals, rule files, relabelling -- with the discovery block swapped for a file one.
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus-kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / r) for r in config["rule_files"]]
    (tmp_path / "targets.json").write_text("[]")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    annotations = " ".join(str(r.get("source_labels")) for r in job["relabel_configs"])
    for annotation in ("scrape", "port", "path"):
        assert f"__meta_kubernetes_pod_annotation_prometheus_io_{annotation}" in annotations


def test_rule_files_are_valid() -> None:
    files = sorted(str(p.relative_to(PROMETHEUS_DIR)) for p in RULES_DIR.glob("*.yml"))
    assert len(files) == 2
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    tests = sorted(str(p.relative_to(PROMETHEUS_DIR)) for p in (PROMETHEUS_DIR / "tests").glob("*.test.yml"))
    assert tests
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests would notice an alert threshold drifting: loosen it and they fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text().replace("voicefleet:turn_latency_seconds:p95 > 0.8", "p95_never > 1")
        (tmp_path / "rules" / path.name).write_text(text)
    for path in (PROMETHEUS_DIR / "tests").glob("*.test.yml"):
        (tmp_path / "tests" / path.name).write_text(path.read_text())
    result = promtool("test", "rules", "tests/voicefleet-rules.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "VoicefleetTurnLatencyHigh" in result.stdout + result.stderr


def test_every_panel_and_rule_expression_parses(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule; a typo in any panel query fails here."""
    expressions = every_expression(RULES_DIR)
    rules = [{"record": f"check:expression_{i}", "expr": e.expr} for i, e in enumerate(expressions)]
    (tmp_path / "all.yml").write_text(yaml.safe_dump({"groups": [{"name": "all", "rules": rules}]}))
    result = promtool("check", "rules", "all.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_every_alert_explains_itself_and_links_a_runbook_section() -> None:
    alerts = yaml.safe_load((RULES_DIR / "voicefleet-alerts.yml").read_text())["groups"][0]["rules"]
    names = {alert["alert"] for alert in alerts}
    assert {
        "VoicefleetTurnLatencyHigh",
        "VoicefleetErrorRateHigh",
        "VoicefleetUpstreamReconnectStorm",
        "VoicefleetNoReadyWorkers",
        "VoicefleetRedisDown",
    } <= names
    for alert in alerts:
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        assert re.fullmatch(r"docs/runbook\.md#[a-z0-9-]+", annotations["runbook"]), alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}
