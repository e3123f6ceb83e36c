"""A real Prometheus scrapes two real workers while voice turns run through them to the us-east simulator.

Unlike the fake-exporter live test, every sample here comes from a worker relaying real turns, so this proves the
whole chain: the runner observes what the metric promises, Prometheus finds the workers the way the fleet
launcher tells it to, and the shipped recording rules turn the buckets into the latencies a client feels.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prom_harness import (
    PROMETHEUS_DIR,
    RULES_DIR,
    RunningPrometheus,
    needs_prometheus,
    running_prometheus,
    wait_for,
)
from websockets.asyncio.client import ClientConnection, connect

from tests.support.processes import start_simulator, start_worker, worker_env
from tests.support.realtime_client import next_event, open_session, send, stream_audio
from voicefleet.fleet.procs import ManagedProcess
from voicefleet.fleet.prometheus import build_config, write_targets
from voicefleet.observability.expressions import NamedExpression, every_expression
from voicefleet.observability.metrics import VOICE_BUCKETS

pytestmark = [pytest.mark.integration, needs_prometheus]

SEED = 7
US_EAST_MS = {0.5: 180, 0.95: 310, 0.99: 480}  # the simulator's us-east time-to-first-audio table
SESSIONS_PER_WORKER = 3
TURNS_PER_SESSION = 6  # 2 workers x 3 sessions x 6 turns = 36 turns

REPLY = "It is eighteen degrees and partly cloudy in Paris."
# These spoken turns (0-based) get a reply that speaks, then calls the worker's get_weather tool, so the tool
# panels see real calls. The speech comes first, so such a turn's latency is still one plain time-to-first-audio
# sample; the tool output makes the worker ask for a follow-up response, so the turn ends at a second
# response.done. Two tool turns per session, seconds apart: a tool's histogram child appears only with its first
# call, so calls from a single scrape interval would show no increase and rate() would never see them.
TOOL_TURNS = (0, 3)
TOOL_REPLY = {
    "say": "Let me check the weather.",
    "function_call": {"name": "get_weather", "arguments": {"location": "Paris"}},
}


def scenario() -> dict[str, Any]:
    """The simulator's script: one entry per response, in the order each session asks for them."""
    turns: list[dict[str, Any]] = []
    for spoken in range(TURNS_PER_SESSION):
        turns += [TOOL_REPLY, {"say": REPLY}] if spoken in TOOL_TURNS else [{"say": REPLY}]
    return {"turns": turns, "default_reply": REPLY}


# Metrics this traffic cannot move, and why; their quantiles stay NaN. Keep this list tiny: a metric that starts
# returning data fails the test, so it leaves this list as soon as the worker records it.
NO_DATA_YET = {
    "resume_duration_seconds": "this traffic resumes no session (the resume tests cover that metric's source)",
    "drain_duration_seconds": "a worker observes it while exiting, after its last scrape",
}
KNOWN_BUGS: dict[str, str] = {}
# The latency alert compares against a time threshold; this test asserts no timing beyond the bucket check.
TIMING_ALERTS = {"VoicefleetTurnLatencyHigh"}


@dataclass(frozen=True, slots=True)
class FleetRun:
    prometheus: RunningPrometheus
    worker_addresses: tuple[str, ...]
    client_latencies_s: tuple[float, ...]


def nearest_rank(samples: tuple[float, ...], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def bucket_index(seconds: float) -> int:
    """Index of the first turn-latency bucket whose upper bound holds ``seconds`` (len = the +Inf bucket)."""
    return bisect.bisect_left(VOICE_BUCKETS, seconds)


def scalar(prometheus: RunningPrometheus, expr: str) -> float:
    answer = prometheus.query(expr)
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    result = answer["data"]["result"]
    assert len(result) == 1, f"{expr}: expected one series, got {result}"
    return float(result[0]["value"][1])


async def warm_simulator_voice(sim_port: int) -> None:
    """Have the simulator synthesise both scripted replies once, straight to it and past the workers.

    Its voice caches by text; otherwise the first measured turns would also wait on speech synthesis.
    """
    ws = await connect(f"ws://127.0.0.1:{sim_port}/v1/realtime?model=gpt-realtime", open_timeout=10)
    async with ws:
        for _ in ("tool reply", "reply"):
            await send(ws, "response.create")
            while (event := await next_event(ws, 20))["type"] != "response.done":
                assert event["type"] != "error", event


async def one_turn(ws: ClientConnection, pcm: bytes, responses: int) -> float:
    """Speak the question; return speech_stopped received -> first audio delta received, as the user hears it."""
    await stream_audio(ws, pcm)
    stopped_at: float | None = None
    latency: float | None = None
    for _ in range(responses):
        while True:
            event = await next_event(ws, 20)
            kind = event["type"]
            if kind == "input_audio_buffer.speech_stopped":
                stopped_at = time.perf_counter()
            elif kind == "response.output_audio.delta" and latency is None and stopped_at is not None:
                latency = time.perf_counter() - stopped_at
            elif kind == "error":
                pytest.fail(f"unexpected error event: {event}")
            elif kind == "response.done":
                assert event["response"]["status"] == "completed", event
                break
    assert latency is not None, "the turn ended without audio after speech_stopped"
    return latency


async def conversation(port: int, pcm: bytes) -> list[float]:
    """One session of spoken turns. Each question follows response.done at once, before the reply would have
    finished playing in real time: the worker takes that as a barge-in, so the interruption and truncation
    panels get real data too."""
    ws = await open_session(port)
    async with ws:
        while (await next_event(ws))["type"] != "fleet.session":
            pass
        return [
            await one_turn(ws, pcm, responses=2 if spoken in TOOL_TURNS else 1)
            for spoken in range(TURNS_PER_SESSION)
        ]


async def run_traffic(sim_port: int, worker_ports: list[int], pcm: bytes) -> tuple[float, ...]:
    await warm_simulator_voice(sim_port)
    sessions = [conversation(port, pcm) for port in worker_ports for _ in range(SESSIONS_PER_WORKER)]
    per_session = await asyncio.wait_for(asyncio.gather(*sessions), 45)
    return tuple(latency for latencies in per_session for latency in latencies)


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory, question_pcm: bytes) -> Iterator[FleetRun]:
    """Simulator, two workers and Prometheus; the voice turns run once and every test below reads the result."""
    tmp = tmp_path_factory.mktemp("fleet-prometheus")
    script = tmp / "scenario.json"
    script.write_text(json.dumps(scenario()))
    started: list[ManagedProcess] = []
    try:
        sim, sim_port = start_simulator(
            tmp, "--profile", "us-east", "--seed", str(SEED), "--scenario", str(script)
        )
        started.append(sim)
        env = worker_env(sim_port, VOICEFLEET_TOOLS="voicefleet.examples.tools")
        worker_ports = []
        for name in ("worker-a", "worker-b"):
            worker, port = start_worker(tmp, env, name=name)
            started.append(worker)
            worker_ports.append(port)
        addresses = tuple(f"127.0.0.1:{port}" for port in worker_ports)

        # The launcher's own config and targets file, sped up so a short test sees many scrapes and evaluations.
        targets = tmp / "targets" / "workers.json"
        write_targets(targets, addresses)
        config = build_config(targets, PROMETHEUS_DIR / "prometheus.yml")
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        with running_prometheus(tmp, config) as prometheus:
            job = config["scrape_configs"][0]["job_name"]
            # Every bucket must have a zero sample before the first turn: then the cumulative counts are
            # exactly this test's turns, and no rate misses the first observations.
            wait_for(
                lambda: len(prometheus.query(f'up{{job="{job}"}} == 1')["data"]["result"]) == len(addresses),
                30,
                "both workers to be scraped",
            )
            latencies = asyncio.run(run_traffic(sim_port, worker_ports, question_pcm))
            wait_for(
                lambda: scalar(prometheus, "sum(voicefleet_turn_latency_seconds_count)") >= len(latencies),
                20,
                f"Prometheus to have scraped all {len(latencies)} turns",
            )
            yield FleetRun(prometheus, addresses, latencies)
    finally:
        for process in reversed(started):
            process.stop()


def test_prometheus_counts_every_turn_from_both_workers(fleet_run: FleetRun) -> None:
    prometheus, turns = fleet_run.prometheus, len(fleet_run.client_latencies_s)
    assert turns == 2 * SESSIONS_PER_WORKER * TURNS_PER_SESSION
    # Exactly one observation per spoken turn: none lost, none doubled by the tool follow-up responses.
    assert scalar(prometheus, "sum(voicefleet_turn_latency_seconds_count)") == turns
    per_worker = prometheus.query("sum by (instance) (voicefleet_turn_latency_seconds_count)")["data"][
        "result"
    ]
    assert {series["metric"]["instance"] for series in per_worker} == set(fleet_run.worker_addresses)
    assert all(float(series["value"][1]) > 0 for series in per_worker)


def test_prometheus_turn_latency_quantiles_match_what_the_client_measured(fleet_run: FleetRun) -> None:
    prometheus, samples = fleet_run.prometheus, fleet_run.client_latencies_s
    # The workers started with this test, so their cumulative buckets hold exactly the test's turns: no
    # range selector, hence none of rate()'s extrapolation, between the client's samples and Prometheus's.
    window = {
        q: scalar(
            prometheus, f"histogram_quantile({q}, sum by (le) (voicefleet_turn_latency_seconds_bucket))"
        )
        for q in US_EAST_MS
    }
    recorded = {
        q: scalar(prometheus, f"voicefleet:turn_latency_seconds:p{round(q * 100)}") for q in US_EAST_MS
    }
    client = {q: nearest_rank(samples, q) for q in US_EAST_MS}
    print(f"\nturn latency over {len(samples)} turns, simulator us-east seed {SEED} (ms):")
    print(f"{'':>6} {'client':>8} {'prom window':>12} {'recorded':>9} {'us-east table':>14}")
    for q, table_ms in US_EAST_MS.items():
        name = f"P{round(q * 100)}"
        print(
            f"{name:>6} {client[q] * 1000:8.0f} {window[q] * 1000:12.0f} {recorded[q] * 1000:9.0f} {table_ms:14d}"
        )

    # histogram_quantile interpolates inside the bucket holding the rank: agreeing to the bucket (or its
    # neighbour, when the rank sits on a boundary) is all the resolution the histogram has.
    for name, prom_p95 in (("window", window[0.95]), ("recording rule", recorded[0.95])):
        gap = abs(bucket_index(prom_p95) - bucket_index(client[0.95]))
        assert gap <= 1, (
            f"Prometheus P95 ({name}) {prom_p95 * 1000:.0f} ms and client P95 {client[0.95] * 1000:.0f} ms are "
            f"{gap} buckets apart (bounds {VOICE_BUCKETS})"
        )


def _has_data(answer: dict[str, Any]) -> bool:
    """Some series with a number: a quantile over buckets that never moved is NaN, which draws nothing."""
    return any(not math.isnan(float(series["value"][1])) for series in answer["data"]["result"])


def _set_aside(expression: NamedExpression) -> str | None:
    """The NO_DATA_YET or KNOWN_BUGS metric this expression reads, if any."""
    return next((metric for metric in {**NO_DATA_YET, **KNOWN_BUGS} if metric in expression.expr), None)


def _answers(prometheus: RunningPrometheus, selected: list[NamedExpression]) -> dict[str, dict[str, Any]]:
    found = {}
    for expression in selected:
        answer = prometheus.query(expression.expr)
        assert answer["status"] == "success", f"{expression.name}: {answer.get('error')}"
        found[expression.name] = answer
    return found


def test_every_panel_and_rule_expression_returns_data(fleet_run: FleetRun) -> None:
    prometheus = fleet_run.prometheus
    expressions = [e for e in every_expression(RULES_DIR) if e.expects_data]
    wanted = [e for e in expressions if _set_aside(e) is None]
    set_aside = [e for e in expressions if _set_aside(e) in NO_DATA_YET]
    assert {_set_aside(e) for e in expressions} - {None} == {*NO_DATA_YET, *KNOWN_BUGS}, (
        "an entry of NO_DATA_YET or KNOWN_BUGS matches no expression: drop it"
    )

    # Rates need two scrapes after the traffic and recorded series one evaluation after that: poll for them.
    still_empty: list[str] = []

    def all_have_data() -> bool:
        answers = _answers(prometheus, wanted)
        still_empty[:] = [name for name, answer in answers.items() if not _has_data(answer)]
        return not still_empty

    try:
        wait_for(all_have_data, 20, "every panel and recording-rule expression to return data")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still empty: {still_empty}") from None
    moved = [name for name, answer in _answers(prometheus, set_aside).items() if _has_data(answer)]
    assert not moved, f"these now return data; remove their metric from NO_DATA_YET: {moved}"


def test_workers_record_upstream_time_to_first_audio(fleet_run: FleetRun) -> None:
    # Every turn got audio from upstream, and the fixture waited until every turn was scraped.
    observed = scalar(fleet_run.prometheus, "sum(voicefleet_upstream_first_audio_seconds_count)")
    assert observed >= len(fleet_run.client_latencies_s)


@pytest.mark.parametrize(
    "alert",
    [
        pytest.param(e, id=e.name)
        for e in every_expression(RULES_DIR)
        if not e.expects_data and e.name not in TIMING_ALERTS
    ],
)
def test_a_healthy_fleet_trips_no_alert(fleet_run: FleetRun, alert: NamedExpression) -> None:
    # The condition itself, not ALERTS: a `for:` longer than this test would hide it as merely pending.
    answer = _answers(fleet_run.prometheus, [alert])[alert.name]
    assert answer["data"]["result"] == [], (
        f"{alert.name} holds on a healthy fleet: {answer['data']['result']}"
    )
