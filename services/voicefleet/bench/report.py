"""From phase results to figures: medians over repeated runs, the targets, and the tables (terminal and
BENCHMARKS.md share one Markdown rendering). Pure functions over the JSON-shaped results."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from voicefleet.bench.stats import median_of, merge_counts, ratio

Phase = Mapping[str, Any]
# The seed's measured time to first audio (us-east), which the fleet must sit on top of.
SEED_US_EAST_MS = {"p50": 180.0, "p95": 310.0, "p99": 480.0}
LIMITS = {
    "cpu_ratio_raw": 1.1,
    "added_p99_ms": 2.0,
    "capacity_sessions": 200,
    "capacity_added_p99_ms": 50.0,
    "idle_kb": 100.0,
    "turn_p95_overhead_ms": 3.0,
}
# (label, key path) of the per-path figures taken as medians over repetitions.
METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("turn P50 ms", ("turn_latency_ms", "p50")),
    ("turn P95 ms", ("turn_latency_ms", "p95")),
    ("turn P99 ms", ("turn_latency_ms", "p99")),
    ("c->u P50 ms", ("client_to_upstream_ms", "p50")),
    ("c->u P99 ms", ("client_to_upstream_ms", "p99")),
    ("u->c P50 ms", ("upstream_to_client_ms", "p50")),
    ("u->c P99 ms", ("upstream_to_client_ms", "p99")),
    ("events/s", ("events_per_s",)),
    ("audio deltas/s", ("audio_deltas_per_s",)),
    ("CPU ms per session-s", ("subject", "cpu_ms_per_session_s")),
    ("core share", ("subject", "core_share")),
    ("peak RSS MB", ("subject", "rss_peak_mb")),
    ("active KB/session", ("subject", "active_kb_per_session")),
    ("load-gen core share", ("loadgen", "core_share")),
)


def dig(phase: Phase, keys: Sequence[str]) -> float:
    value: Any = phase
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return math.nan
        value = value[key]
    return float(value) if isinstance(value, int | float) else math.nan


def by_path(runs: Sequence[Sequence[Phase]]) -> dict[str, list[Phase]]:
    grouped: dict[str, list[Phase]] = {}
    for run in runs:
        for phase in run:
            grouped.setdefault(str(phase["path"]), []).append(phase)
    return grouped


def medians(runs: Sequence[Sequence[Phase]]) -> dict[str, dict[str, Any]]:
    """Per path: the median of every metric over the repetitions, plus errors summed over them."""
    result: dict[str, dict[str, Any]] = {}
    for path, phases in by_path(runs).items():
        figures: dict[str, Any] = {label: median_of(dig(p, keys) for p in phases) for label, keys in METRICS}
        figures["errors"] = merge_counts(p["errors"] for p in phases)
        figures["runs"] = len(phases)
        figures["turns"] = sum(int(p["turns"]) for p in phases)
        figures["load-gen bottleneck"] = any(p["loadgen"]["bottleneck"] for p in phases)
        result[path] = figures
    return result


def added(run: Sequence[Phase], path: str = "worker") -> dict[str, float]:
    """What `path` adds over direct in one repetition, per direction and on the turn latency."""
    found = {str(p["path"]): p for p in run}
    if path not in found or "direct" not in found:
        return {}
    through, direct = found[path], found["direct"]
    out: dict[str, float] = {}
    for name, key in (("c->u", "client_to_upstream_ms"), ("u->c", "upstream_to_client_ms")):
        for pct in ("p50", "p99"):
            out[f"{name} {pct}"] = dig(through, (key, pct)) - dig(direct, (key, pct))
    out["turn p95"] = dig(through, ("turn_latency_ms", "p95")) - dig(direct, ("turn_latency_ms", "p95"))
    return out


def median_added(runs: Sequence[Sequence[Phase]], path: str = "worker") -> dict[str, float]:
    per_run = [added(run, path) for run in runs]
    keys = [key for key in (per_run[0] if per_run else {})]
    return {key: median_of(r.get(key, math.nan) for r in per_run) for key in keys}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def paths_table(figures: Mapping[str, Mapping[str, Any]]) -> str:
    paths = [p for p in ("direct", "worker", "raw", "naive") if p in figures]
    labels = [label for label, _ in METRICS] + ["errors", "load-gen bottleneck", "turns", "runs"]
    rows = [[label, *(figures[p].get(label, math.nan) for p in paths)] for label in labels]
    return markdown_table(["metric", *paths], rows)


def targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target as {name, value, limit, met}; met is None when the run did not measure it."""
    figures = summary.get("median", {})
    add = summary.get("added", {})
    worker = figures.get("worker", {})
    out: list[dict[str, Any]] = []

    def target(name: str, value: float, limit: str, met: bool | None) -> None:
        out.append({"name": name, "value": round(value, 3), "limit": limit, "met": met})

    cpu = ratio(
        worker.get("CPU ms per session-s", math.nan),
        figures.get("raw", {}).get("CPU ms per session-s", math.nan),
    )
    target(
        "worker CPU per session vs raw relay",
        cpu,
        f"<= {LIMITS['cpu_ratio_raw']}x",
        None if math.isnan(cpu) else cpu <= LIMITS["cpu_ratio_raw"],
    )
    sessions = summary.get("config", {}).get("sessions", 0)
    worst = max(add.get("c->u p99", math.nan), add.get("u->c p99", math.nan))
    clean = not worker.get("errors")
    target(
        f"p99 added latency each way at K={sessions}, no errors",
        worst,
        f"<= {LIMITS['added_p99_ms']} ms",
        None if math.isnan(worst) else worst <= LIMITS["added_p99_ms"] and clean,
    )
    capacity = summary.get("capacity", {}).get("max_sessions")
    if capacity is not None:
        target(
            "sessions per worker core at p99 added <= 50 ms",
            float(capacity),
            f">= {LIMITS['capacity_sessions']}",
            capacity >= LIMITS["capacity_sessions"],
        )
    idle = summary.get("idle", {}).get("worker", math.nan)
    target(
        "memory per idle session (KB)",
        idle,
        f"<= {LIMITS['idle_kb']:.0f} KB",
        None if math.isnan(idle) else idle <= LIMITS["idle_kb"],
    )
    turn = add.get("turn p95", math.nan)
    target(
        "turn latency P95 overhead vs direct (ms)",
        turn,
        f"<= {LIMITS['turn_p95_overhead_ms']} ms",
        None if math.isnan(turn) else turn <= LIMITS["turn_p95_overhead_ms"],
    )
    latency = summary.get("latency")
    if latency:
        through = latency.get("worker", {}).get("turn_latency_ms", {})
        off = max(abs(dig(through, (p,)) - seed) / seed for p, seed in SEED_US_EAST_MS.items() if p != "p99")
        target(
            "us-east P50/P95 through the worker vs seed 180/310 (max relative gap)",
            off,
            "<= 0.05",
            off <= 0.05,
        )
    return out


def targets_table(rows: Sequence[Mapping[str, Any]]) -> str:
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    return markdown_table(
        ["target", "measured", "limit", "verdict"],
        [[r["name"], r["value"], r["limit"], verdict[r["met"]]] for r in rows],
    )


def latency_table(latency: Mapping[str, Any]) -> str:
    rows = []
    direct = latency.get("direct", {}).get("turn_latency_ms", {})
    worker = latency.get("worker", {}).get("turn_latency_ms", {})
    for pct, seed in SEED_US_EAST_MS.items():
        rows.append(
            [
                pct.upper(),
                seed,
                dig(direct, (pct,)),
                dig(worker, (pct,)),
                dig(worker, (pct,)) - dig(direct, (pct,)),
            ]
        )
    return markdown_table(
        ["", "seed table ms", "simulator direct ms", "through worker ms", "fleet's own ms"], rows
    )


def capacity_table(capacity: Mapping[str, Any]) -> str:
    rows = [
        [
            s["sessions"],
            s["ready"],
            s["c->u p99"],
            s["u->c p99"],
            s["worker core share"],
            s["load-gen core share"],
            s["errors"],
            s["passed"],
        ]
        for s in capacity.get("steps", [])
    ]
    return markdown_table(
        [
            "sessions",
            "ready",
            "added c->u P99 ms",
            "added u->c P99 ms",
            "worker core",
            "load-gen core",
            "errors",
            "pass",
        ],
        rows,
    )


def terminal_report(summary: Mapping[str, Any]) -> str:
    parts = ["Per path (median of runs):", paths_table(summary.get("median", {}))]
    if summary.get("added"):
        parts += ["", "Worker adds over direct (median of runs, ms):"]
        parts.append(markdown_table(["", *summary["added"]], [["ms", *summary["added"].values()]]))
    if summary.get("ratios"):
        parts += ["", "Worker CPU per session as a ratio to: " + _fmt(summary["ratios"])]
    if summary.get("idle"):
        parts += ["", "Memory per idle session (KB): " + _fmt(summary["idle"])]
    if summary.get("latency"):
        parts += [
            "",
            f"Turn latency with --profile {summary['latency']['profile']}:",
            latency_table(summary["latency"]),
        ]
    if summary.get("capacity"):
        parts += ["", "Capacity sweep (worker on one core):", capacity_table(summary["capacity"])]
    if summary.get("targets"):
        parts += ["", "Targets:", targets_table(summary["targets"])]
    for warning in summary.get("warnings", []):
        parts.append(f"WARNING: {warning}")
    return "\n".join(parts)
