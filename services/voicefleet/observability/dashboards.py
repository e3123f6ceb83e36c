"""The fleet's Grafana dashboard, as code, and the command that writes it (with the recording rules).

    python -m voicefleet.observability.dashboards --out deploy/grafana/dashboards \
        --rules-out deploy/prometheus/rules

Output is deterministic (sorted keys, fixed ids), so regenerating gives byte-identical files and a review
diff shows exactly what changed on a panel.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from voicefleet.observability.grafana.model import (
    JSON,
    CustomVariable,
    Panel,
    Query,
    Row,
    Threshold,
    dashboard,
)
from voicefleet.observability.promql import RECORDING_RULES_FILE, quantile_series, recording_rules_yaml

OVERVIEW_UID: Final = "voicefleet-overview"
RATE: Final = "$__rate_interval"
# The seed's measured turn latency against OpenAI from us-east, the yardstick a fleet should stay near.
US_EAST_REFERENCE_S: Final[tuple[tuple[str, float], ...]] = (("P50", 0.180), ("P95", 0.310), ("P99", 0.480))
TURN_LATENCY_ALERT_S: Final = 0.8  # keep in step with VoicefleetTurnLatencyHigh
PRICE: Final = CustomVariable(
    name="price",
    label="USD per 1M tokens",
    description="Blended price per million tokens, used by the cost panel (audio output costs most).",
    values=("32", "64", "20", "10", "4"),
)


def _quantiles(histogram: str, legend_suffix: str = "") -> tuple[Query, ...]:
    return tuple(
        Query(quantile_series(histogram, q), f"{q.upper()}{legend_suffix}") for q in ("p50", "p95", "p99")
    )


def _rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{selector}[{RATE}]))"


LATENCY = Row(
    "Latency",
    (
        Panel(
            "Turn latency",
            "User speech stopped to first audio delta sent to the client, fleet-wide P50/P95/P99. Dashed "
            "grey lines: the us-east reference (180/310/480 ms). Red dashed line: the 800 ms P95 alert.",
            (
                *_quantiles("turn_latency_seconds"),
                *(
                    Query(f"vector({seconds})", f"us-east {q} reference", reference=True)
                    for q, seconds in US_EAST_REFERENCE_S
                ),
            ),
            unit="s",
            thresholds=(Threshold(TURN_LATENCY_ALERT_S, "red"),),
        ),
        Panel(
            "Upstream time to first audio",
            "Response requested upstream to first audio delta received: the model's share of turn latency.",
            _quantiles("upstream_first_audio_seconds"),
            unit="s",
        ),
        Panel(
            "Relay added latency",
            "Time an event spends inside the worker, per direction. Should stay well under a millisecond; "
            "growth means the worker's event loop is saturated.",
            (
                Query(quantile_series("relay_added_latency_seconds", "p50"), "P50 {{direction}}"),
                Query(quantile_series("relay_added_latency_seconds", "p99"), "P99 {{direction}}"),
            ),
            unit="s",
        ),
        Panel(
            "Upstream connect time",
            "Opening the upstream Realtime socket (TCP, TLS, WebSocket handshake), P50/P95/P99.",
            _quantiles("upstream_connect_seconds"),
            unit="s",
        ),
    ),
)

SESSIONS = Row(
    "Sessions",
    (
        Panel(
            "Live sessions per worker",
            "Open client sessions on each worker (stacked), and sessions held open for a same-worker resume.",
            (
                Query("sum by (instance) (voicefleet_live_sessions)", "{{instance}}"),
                Query("sum(voicefleet_resume_buffered_sessions)", "held for resume"),
            ),
            unit="short",
            stacked=True,
        ),
        Panel(
            "Sessions started and ended",
            "Sessions accepted per second, and sessions ended per second by reason.",
            (
                Query(_rate("voicefleet_sessions_started_total"), "started"),
                Query(_rate("voicefleet_sessions_ended_total", "reason"), "ended: {{reason}}"),
            ),
            unit="ops",
        ),
        Panel(
            "Interruptions and truncations",
            "Barge-ins per second, and assistant items truncated to what the client had played.",
            (
                Query(_rate("voicefleet_interruptions_total"), "interruptions"),
                Query(_rate("voicefleet_truncations_total"), "truncations"),
            ),
            unit="ops",
        ),
        Panel(
            "Tool duration",
            "Server-side tool call duration P95 by tool.",
            (Query(quantile_series("tool_duration_seconds", "p95"), "P95 {{tool}}"),),
            unit="s",
        ),
    ),
)

RELIABILITY = Row(
    "Reliability",
    (
        Panel(
            "Resumes by kind",
            "Resume attempts per second by kind (same worker, other worker, upstream rebuild) and outcome.",
            (Query(_rate("voicefleet_resumes_total", "kind, outcome"), "{{kind}} {{outcome}}"),),
            unit="ops",
        ),
        Panel(
            "Resume duration",
            "Reconnect request to resumed session, P95 by kind.",
            (Query(quantile_series("resume_duration_seconds", "p95"), "P95 {{kind}}"),),
            unit="s",
        ),
        Panel(
            "Errors by code",
            "Error events sent to clients per second, by code (codes outside the known list are 'other').",
            (
                Query(_rate("voicefleet_errors_total", "code"), "{{code}}"),
                Query("voicefleet:errors_per_response:ratio_rate5m", "errors per response (5m)"),
            ),
            unit="ops",
        ),
        Panel(
            "Upstream reconnects",
            "Upstream sockets reopened mid-session per second, by reason. A storm usually means the upstream "
            "or the network path to it is failing.",
            (Query(_rate("voicefleet_upstream_reconnects_total", "reason"), "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Auth failures",
            "Rejected client connections per second, by reason.",
            (Query(_rate("voicefleet_auth_failures_total", "reason"), "{{reason}}"),),
            unit="ops",
        ),
    ),
)

COST_AND_STATE = Row(
    "Tokens, cost and state",
    (
        Panel(
            "Tokens by kind",
            "Upstream tokens per second from response.done usage. 'cached' is part of the input tokens.",
            (Query(_rate("voicefleet_tokens_total", "kind"), "{{kind}}"),),
            unit="short",
            width=8,
        ),
        Panel(
            "Cost rate",
            "Estimated spend in USD per hour: billed tokens (cached counted once, inside input) times $price "
            "per million tokens.",
            (
                Query(
                    _rate("voicefleet_tokens_total", selector='{kind!="cached"}')
                    + " * 3600 * $price / 1000000",
                    "USD per hour",
                ),
            ),
            unit="currencyUSD",
            width=8,
        ),
        Panel(
            "Redis failures",
            "Failed Redis operations per second, by operation.",
            (Query(_rate("voicefleet_redis_failures_total", "operation"), "{{operation}}"),),
            unit="ops",
            width=8,
        ),
        Panel(
            "Redis",
            "Lowest voicefleet_redis_up across workers: 'down' when any worker cannot reach the store.",
            (Query("min(voicefleet_redis_up)", "store"),),
            unit="none",
            kind="stat",
            width=8,
            height=5,
            thresholds=(Threshold(0, "red"), Threshold(1, "green")),
            value_texts={"0": "down", "1": "up"},
        ),
        Panel(
            "Workers up",
            "Workers Prometheus can scrape, and how many of them are draining.",
            (
                Query('sum(up{job=~"voicefleet.*"})', "up"),
                Query("sum(voicefleet_draining)", "draining"),
            ),
            unit="none",
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Audio relayed",
            "Seconds of audio per second of wall time, by direction: a load figure independent of sessions.",
            (Query(_rate("voicefleet_audio_seconds_total", "direction"), "{{direction}}"),),
            unit="short",
            kind="stat",
            width=8,
            height=5,
        ),
    ),
)

OVERVIEW_ROWS: Final[tuple[Row, ...]] = (LATENCY, SESSIONS, RELIABILITY, COST_AND_STATE)


def overview() -> JSON:
    return dashboard(
        OVERVIEW_UID,
        "voicefleet overview",
        "Turn latency, sessions, resumes, errors, upstream health, tokens and Redis for a voicefleet fleet.",
        OVERVIEW_ROWS,
        (PRICE,),
    )


def dashboards() -> dict[str, JSON]:
    """File name -> dashboard model, for everything the command writes."""
    return {f"{OVERVIEW_UID}.json": overview()}


def render_json(model: JSON) -> str:
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(out: Path, rules_out: Path | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in dashboards().items():
        path = out / name
        path.write_text(render_json(model), encoding="utf-8")
        written.append(path)
    if rules_out is not None:
        rules_out.mkdir(parents=True, exist_ok=True)
        path = rules_out / RECORDING_RULES_FILE
        path.write_text(recording_rules_yaml(), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voicefleet.observability.dashboards", description="Write Grafana dashboards as JSON."
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for dashboard JSON files")
    parser.add_argument("--rules-out", type=Path, help="also write the Prometheus recording rules here")
    args = parser.parse_args(argv)
    for path in write_all(args.out, args.rules_out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
