"""Typed descriptions of panels and a builder that lays them out as a Grafana 11 dashboard JSON model.

Only the handful of fields voicefleet's dashboards use are modelled. Every panel reads Prometheus through the
``$datasource`` variable, so the same JSON imports into any Grafana that has a Prometheus data source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

SCHEMA_VERSION: Final = 39  # Grafana 11.0-11.x
GRID_WIDTH: Final = 24
DATASOURCE_REF: Final[dict[str, str]] = {"type": "prometheus", "uid": "${datasource}"}

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str
    reference: bool = False
    """A constant reference line: drawn dashed and grey so it reads as a yardstick, not as data."""


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    color: str


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[Threshold, ...] = ()
    """Drawn as dashed lines on time series (e.g. an alert's threshold); colour steps on stats."""
    stacked: bool = False
    value_texts: dict[str, str] = field(default_factory=dict)
    """Stat panels: show these words instead of raw values (e.g. 0 -> "down")."""


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class CustomVariable:
    name: str
    label: str
    description: str
    values: tuple[str, ...]
    """The first value is the default."""


def _target(ref_id: str, query: Query) -> JSON:
    return {
        "datasource": DATASOURCE_REF,
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": True,
        "refId": ref_id,
    }


def _thresholds(panel: Panel) -> JSON:
    steps: list[JSON] = [{"color": "green", "value": None}]
    steps += [{"color": t.color, "value": t.value} for t in panel.thresholds]
    return {"mode": "absolute", "steps": steps}


def _reference_override(ref_id: str) -> JSON:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
            {"id": "color", "value": {"fixedColor": "text", "mode": "fixed"}},
            {"id": "custom.lineWidth", "value": 1},
        ],
    }


def _timeseries_fields(panel: Panel, ref_ids: list[str]) -> tuple[JSON, JSON]:
    custom = {
        "drawStyle": "line",
        "fillOpacity": 10 if panel.stacked else 0,
        "lineWidth": 2,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
        "thresholdsStyle": {"mode": "dashed" if panel.thresholds else "off"},
    }
    defaults = {"custom": custom, "min": 0, "thresholds": _thresholds(panel), "unit": panel.unit}
    overrides = [_reference_override(r) for r, q in zip(ref_ids, panel.queries, strict=True) if q.reference]
    options = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return {"defaults": defaults, "overrides": overrides}, options


def _stat_fields(panel: Panel) -> tuple[JSON, JSON]:
    mappings: list[JSON] = []
    if panel.value_texts:
        mappings.append(
            {
                "options": {
                    raw: {"index": i, "text": text} for i, (raw, text) in enumerate(panel.value_texts.items())
                },
                "type": "value",
            }
        )
    defaults = {"mappings": mappings, "thresholds": _thresholds(panel), "unit": panel.unit}
    options = {
        "colorMode": "background",
        "graphMode": "none",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "value_and_name",
    }
    return {"defaults": defaults, "overrides": []}, options


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> JSON:
    ref_ids = [chr(ord("A") + i) for i in range(len(panel.queries))]
    if panel.kind == "timeseries":
        field_config, options = _timeseries_fields(panel, ref_ids)
    else:
        field_config, options = _stat_fields(panel)
    return {
        "datasource": DATASOURCE_REF,
        "description": panel.description,
        "fieldConfig": field_config,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": options,
        "targets": [_target(r, q) for r, q in zip(ref_ids, panel.queries, strict=True)],
        "title": panel.title,
        "type": panel.kind,
    }


def _layout(rows: tuple[Row, ...]) -> list[JSON]:
    """Rows stack vertically; inside a row panels fill left to right and wrap at the grid width."""
    panels: list[JSON] = []
    next_id = 1
    y = 0
    for row in rows:
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": next_id,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            panels.append(_panel_json(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def _datasource_variable() -> JSON:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Prometheus",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def _custom_variable(variable: CustomVariable) -> JSON:
    default = variable.values[0]
    return {
        "current": {"selected": True, "text": default, "value": default},
        "description": variable.description,
        "hide": 0,
        "includeAll": False,
        "label": variable.label,
        "multi": False,
        "name": variable.name,
        "options": [{"selected": v == default, "text": v, "value": v} for v in variable.values],
        "query": ",".join(variable.values),
        "type": "custom",
    }


def dashboard(
    uid: str, title: str, description: str, rows: tuple[Row, ...], variables: tuple[CustomVariable, ...] = ()
) -> JSON:
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,  # shared crosshair: line up latency spikes with reconnects and errors
        "id": None,
        "links": [],
        "panels": _layout(rows),
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["voicefleet"],
        "templating": {"list": [_datasource_variable(), *(_custom_variable(v) for v in variables)]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def queries_of(rows: tuple[Row, ...]) -> list[tuple[str, Query]]:
    """(panel title, query) for every query on a dashboard, in layout order."""
    return [(panel.title, query) for row in rows for panel in row.panels for query in panel.queries]
