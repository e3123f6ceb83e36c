"""Dashboards and recording rules: generated files match the code, panels are laid out and reference real series."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prom_harness import DASHBOARDS_DIR, RULES_DIR

from voicefleet.observability import dashboards
from voicefleet.observability.expressions import every_expression, panel_expressions, substitute_variables
from voicefleet.observability.metrics import FleetMetrics
from voicefleet.observability.promql import RECORDING_RULES_FILE, recording_rules


def load_overview() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS_DIR / "voicefleet-overview.json").read_text())
    return loaded


def test_regenerating_gives_byte_identical_files(tmp_path: Path) -> None:
    assert dashboards.main(["--out", str(tmp_path / "d"), "--rules-out", str(tmp_path / "r")]) == 0
    generated = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert generated == sorted(p.name for p in DASHBOARDS_DIR.glob("*.json"))
    for name in generated:
        assert (tmp_path / "d" / name).read_bytes() == (DASHBOARDS_DIR / name).read_bytes(), name
    rules = (tmp_path / "r" / RECORDING_RULES_FILE).read_bytes()
    assert rules == (RULES_DIR / RECORDING_RULES_FILE).read_bytes(), "re-run the dashboards generator"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = load_overview()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_the_panels_the_operators_asked_for_are_there() -> None:
    titles = {p["title"] for p in load_overview()["panels"] if p["type"] != "row"}
    assert {
        "Turn latency",
        "Upstream time to first audio",
        "Relay added latency",
        "Live sessions per worker",
        "Sessions started and ended",
        "Interruptions and truncations",
        "Resumes by kind",
        "Errors by code",
        "Upstream reconnects",
        "Cost rate",
        "Redis",
    } <= titles
    for panel in load_overview()["panels"]:
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_turn_latency_shows_the_us_east_reference_and_the_alert_threshold() -> None:
    (panel,) = [p for p in load_overview()["panels"] if p["title"] == "Turn latency"]
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs[:3] == [f"voicefleet:turn_latency_seconds:{q}" for q in ("p50", "p95", "p99")]
    assert exprs[3:] == ["vector(0.18)", "vector(0.31)", "vector(0.48)"]
    dashed = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]}
    assert dashed == {"D", "E", "F"}
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 0.8} in steps


def test_cost_panel_uses_the_price_variable() -> None:
    model = load_overview()
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["price"]["type"] == "custom" and variables["datasource"]["type"] == "datasource"
    (panel,) = [p for p in model["panels"] if p["title"] == "Cost rate"]
    assert "$price" in panel["targets"][0]["expr"]
    assert "$price" not in substitute_variables(panel["targets"][0]["expr"])


def test_every_series_an_expression_reads_is_exported_or_recorded() -> None:
    """A renamed metric or a typo in a query would leave a panel silently empty; catch it here."""
    metrics = FleetMetrics()
    metrics.observe_tool("lookup_order", "ok", 0.1)  # the only family with no children until first use
    body, _ = metrics.render()
    exported = set(re.findall(r"^(voicefleet_\w+?)(?:\{| )", body.decode(), re.MULTILINE))
    recorded = {rule.record for rule in recording_rules()}
    for expression in every_expression(RULES_DIR):
        for name in re.findall(r"voicefleet[_:][\w:]+", expression.expr):
            assert name in exported or name in recorded, f"{expression.name}: {name} does not exist"


def test_panel_expressions_have_no_template_variables_left() -> None:
    for expression in panel_expressions():
        assert "$" not in expression.expr, expression.name
