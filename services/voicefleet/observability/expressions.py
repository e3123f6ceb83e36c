"""Every PromQL expression voicefleet ships, in one list, so tests can check each against a real Prometheus.

Sources: the dashboard panels (with Grafana's template variables replaced by concrete values), and every rule
in the Prometheus rules directory (the generated recording rules and the hand-written alerts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from voicefleet.observability.dashboards import OVERVIEW_ROWS, PRICE
from voicefleet.observability.grafana.model import queries_of

# What Grafana would put in place of each template variable, for running panel queries elsewhere.
TEMPLATE_DEFAULTS: Final[Mapping[str, str]] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "price": PRICE.values[0],
}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


@dataclass(frozen=True, slots=True)
class NamedExpression:
    origin: Literal["panel", "record", "alert"]
    name: str
    """Panel title and legend, recorded series name, or alert name."""
    expr: str
    """Ready to send to Prometheus: no template variables left."""

    @property
    def expects_data(self) -> bool:
        """Panels and recording rules should return series on a fleet with traffic; alerts should not fire."""
        return self.origin != "alert"


def substitute_variables(expr: str, values: Mapping[str, str] = TEMPLATE_DEFAULTS) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template variable ${name} has no default for running {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def panel_expressions() -> list[NamedExpression]:
    return [
        NamedExpression("panel", f"{title}: {query.legend}", substitute_variables(query.expr))
        for title, query in queries_of(OVERVIEW_ROWS)
    ]


def rule_expressions(rules_dir: Path) -> list[NamedExpression]:
    found = []
    for path in sorted(rules_dir.glob("*.yml")):
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    found.append(NamedExpression("record", rule["record"], rule["expr"]))
                else:
                    found.append(NamedExpression("alert", rule["alert"], rule["expr"]))
    return found


def every_expression(rules_dir: Path) -> list[NamedExpression]:
    """All panel queries plus every rule under ``rules_dir`` (``deploy/prometheus/rules`` in the repo)."""
    return [*panel_expressions(), *rule_expressions(rules_dir)]
