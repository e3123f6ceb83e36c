"""A real Prometheus, run from the committed config and rules, scrapes a real FleetMetrics endpoint; every panel
and rule expression is then asked of it through the HTTP API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_harness import RULES_DIR, free_port, local_config, needs_prometheus, running_prometheus, wait_for
from prometheus_client import start_http_server

from voicefleet.observability.expressions import every_expression
from voicefleet.observability.metrics import FleetMetrics

pytestmark = [pytest.mark.integration, needs_prometheus]


def simulate_traffic(metrics: FleetMetrics, stop: threading.Event) -> None:
    """Touch every metric each round, so that every rate and quantile over a short window has data."""
    metrics.set_redis_up(True)
    metrics.set_draining(False)
    usage = {
        "input_token_details": {"text_tokens": 40, "audio_tokens": 120, "cached_tokens": 32},
        "output_token_details": {"text_tokens": 20, "audio_tokens": 300},
    }
    round_number = 0
    while not stop.wait(0.05):
        round_number += 1
        metrics.sessions_started.inc()
        metrics.live_sessions.set(3 + round_number % 2)
        metrics.resume_buffered_sessions.set(1)
        metrics.turn_latency.observe(0.2 + (round_number % 10) / 100)
        metrics.upstream_first_audio.observe(0.15)
        metrics.upstream_connect.observe(0.08)
        metrics.observe_relay("client_to_upstream", 0.0002)
        metrics.observe_relay("upstream_to_client", 0.0004)
        metrics.observe_tool("lookup_order", "ok", 0.12)
        for kind in ("same_worker", "other_worker", "upstream"):
            metrics.count_resume(kind, "ok", 0.3)
        metrics.drain_duration.observe(4.0)
        metrics.count_event("upstream", "response.done")
        metrics.count_event("client", "input_audio_buffer.append")
        metrics.count_error("server_error")
        metrics.count_session_end("client_closed")
        metrics.interruptions.inc()
        metrics.truncations.inc()
        metrics.count_upstream_reconnect("connection_lost")
        metrics.count_auth_failure("unknown_key")
        metrics.count_redis_failure("save")
        metrics.count_usage(usage)
        metrics.count_audio("input", 0.05)
        metrics.count_audio("output", 0.04)


@pytest.fixture
def exporter() -> Iterator[int]:
    metrics = FleetMetrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()
    traffic = threading.Thread(target=simulate_traffic, args=(metrics, stop), daemon=True)
    traffic.start()
    try:
        yield port
    finally:
        stop.set()
        traffic.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_every_expression_returns_data_from_a_real_prometheus(tmp_path: Path, exporter: int) -> None:
    targets = tmp_path / "workers.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{exporter}"], "labels": {"fleet": "test"}}]))
    expressions = every_expression(RULES_DIR)
    with running_prometheus(tmp_path, local_config(targets)) as prometheus:
        wait_for(
            lambda: prometheus.query('up{job="voicefleet-workers"} == 1')["data"]["result"],
            30,
            "the file_sd target to be scraped",
        )

        def missing() -> list[str]:
            empty = []
            for expression in expressions:
                answer = prometheus.query(expression.expr)
                assert answer["status"] == "success", f"{expression.name}: {answer.get('error')}"
                if expression.expects_data and not answer["data"]["result"]:
                    empty.append(expression.name)
            return empty

        # Rates need two scrapes and recorded series one rule evaluation after that: wait for all of them.
        last: list[list[str]] = []

        def all_have_data() -> bool:
            last[:] = [missing()]
            return not last[0]

        try:
            wait_for(all_have_data, 45, "every panel and recording-rule expression to return data")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still empty: {last[0]}") from None

        p95 = float(prometheus.query("voicefleet:turn_latency_seconds:p95")["data"]["result"][0]["value"][1])
        assert 0.2 <= p95 <= 0.3  # observations are 200-290 ms
        # Nothing the simulated fleet does should fire the latency, worker or Redis alerts.
        firing = prometheus.query('ALERTS{alertstate="firing"}')["data"]["result"]
        assert {a["metric"]["alertname"] for a in firing}.isdisjoint(
            {"VoicefleetTurnLatencyHigh", "VoicefleetNoReadyWorkers", "VoicefleetRedisDown"}
        )
