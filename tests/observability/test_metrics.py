"""FleetMetrics: the names the worker codes against, bounded labels, usage accounting, exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from voicefleet.observability import label_values as lv
from voicefleet.observability.metrics import VOICE_BUCKETS, FleetMetrics


def exposed_series(metrics: FleetMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(metrics: FleetMetrics, name: str, **labels: str) -> float:
    return exposed_series(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def test_every_metric_the_worker_uses_is_exposed_under_its_documented_name() -> None:
    body, content_type = FleetMetrics().render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in [
        "voicefleet_turn_latency_seconds_bucket",
        "voicefleet_upstream_first_audio_seconds_bucket",
        "voicefleet_upstream_connect_seconds_bucket",
        'voicefleet_relay_added_latency_seconds_bucket{direction="client_to_upstream"',
        'voicefleet_resume_duration_seconds_bucket{kind="other_worker"',
        "voicefleet_drain_duration_seconds_bucket",
        "voicefleet_sessions_started_total",
        'voicefleet_sessions_ended_total{reason="client_closed"}',
        'voicefleet_errors_total{code="other"}',
        "voicefleet_interruptions_total",
        "voicefleet_truncations_total",
        'voicefleet_upstream_reconnects_total{reason="connection_lost"}',
        'voicefleet_resumes_total{kind="same_worker",outcome="ok"}',
        'voicefleet_auth_failures_total{reason="unknown_key"}',
        'voicefleet_tokens_total{kind="output_audio"}',
        'voicefleet_audio_seconds_total{direction="input"}',
        'voicefleet_redis_failures_total{operation="save"}',
        "voicefleet_live_sessions ",
        "voicefleet_draining ",
        "voicefleet_resume_buffered_sessions ",
        "voicefleet_redis_up ",
    ]:
        assert name in text, name


def test_voice_buckets_span_five_milliseconds_to_ten_seconds() -> None:
    metrics = FleetMetrics()
    metrics.turn_latency.observe(0.31)
    series = exposed_series(metrics)
    bounds = sorted(
        float(dict(labels)["le"])
        for (name, labels) in series
        if name == "voicefleet_turn_latency_seconds_bucket"
    )
    assert bounds[0] == 0.005 and bounds[-2] == 10.0 and bounds[-1] == float("inf")
    assert tuple(bounds[:-1]) == VOICE_BUCKETS
    assert value(metrics, "voicefleet_turn_latency_seconds_bucket", le="0.25") == 0
    assert value(metrics, "voicefleet_turn_latency_seconds_bucket", le="0.4") == 1


def test_unknown_event_types_fold_into_other_and_never_add_series() -> None:
    metrics = FleetMetrics()
    metrics.count_event("client", "input_audio_buffer.append")
    metrics.count_event("upstream", "response.output_audio.delta")
    metrics.count_event("client", "made.up")
    baseline = set(exposed_series(metrics))
    for i in range(2000):
        metrics.count_event("client", f"session-{i}.hostile")
        metrics.count_event("upstream", f"user-{i}")
        metrics.count_event("client", "input_audio_buffer.append")
    assert set(exposed_series(metrics)) == baseline
    assert value(metrics, "voicefleet_events_total", direction="client", type="other") == 2001
    assert value(metrics, "voicefleet_events_total", direction="upstream", type="other") == 2000
    appends = value(metrics, "voicefleet_events_total", direction="client", type="input_audio_buffer.append")
    assert appends == 2001
    # An event type known on one side is still `other` on the side that never sends it.
    metrics.count_event("client", "response.output_audio.delta")
    assert value(metrics, "voicefleet_events_total", direction="client", type="other") == 2002


def test_the_event_series_count_is_bounded_by_the_known_type_lists() -> None:
    metrics = FleetMetrics()
    for direction, known in lv.EVENT_TYPES_BY_DIRECTION.items():
        for event_type in [*known, "x", "y"]:
            metrics.count_event(direction, event_type)
    event_series = {k for k in exposed_series(metrics) if k[0] == "voicefleet_events_total"}
    assert len(event_series) == len(lv.CLIENT_EVENT_TYPES) + len(lv.UPSTREAM_EVENT_TYPES) + 2


def test_an_unknown_event_direction_is_a_programming_error() -> None:
    metrics = FleetMetrics()
    try:
        metrics.count_event("sideways", "response.done")
    except ValueError as exc:
        assert "sideways" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_unknown_error_codes_and_reasons_fold_into_other() -> None:
    metrics = FleetMetrics()
    baseline = set(exposed_series(metrics))
    for i in range(500):
        metrics.count_error(f"weird_code_{i}")
        metrics.count_session_end(f"reason {i}")
        metrics.count_upstream_reconnect(f"why {i}")
        metrics.count_auth_failure(f"key-{i}")
        metrics.count_redis_failure(f"op{i}")
    metrics.count_error(None)
    metrics.count_error("rate_limit_exceeded")
    assert set(exposed_series(metrics)) == baseline
    assert value(metrics, "voicefleet_errors_total", code="other") == 501
    assert value(metrics, "voicefleet_errors_total", code="rate_limit_exceeded") == 1
    assert value(metrics, "voicefleet_sessions_ended_total", reason="other") == 500
    assert value(metrics, "voicefleet_redis_failures_total", operation="other") == 500


def test_usage_of_a_ga_response_done_is_counted_by_token_kind() -> None:
    metrics = FleetMetrics()
    usage = {
        "total_tokens": 253,
        "input_tokens": 137,
        "output_tokens": 116,
        "input_token_details": {
            "text_tokens": 117,
            "audio_tokens": 20,
            "image_tokens": 0,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 30, "audio_tokens": 86},
    }
    metrics.count_usage(usage)
    metrics.count_usage(usage)
    assert value(metrics, "voicefleet_tokens_total", kind="input_text") == 234
    assert value(metrics, "voicefleet_tokens_total", kind="input_audio") == 40
    assert value(metrics, "voicefleet_tokens_total", kind="cached") == 128
    assert value(metrics, "voicefleet_tokens_total", kind="output_text") == 60
    assert value(metrics, "voicefleet_tokens_total", kind="output_audio") == 172


def test_malformed_usage_is_ignored_rather_than_raising() -> None:
    metrics = FleetMetrics()
    before = exposed_series(metrics)
    for bad in [
        None,
        "usage",
        {},
        {"input_token_details": "x"},
        {"input_token_details": {"text_tokens": "12", "audio_tokens": -5, "cached_tokens": True}},
        {"output_token_details": {"audio_tokens": 2.5}},
    ]:
        metrics.count_usage(bad)  # type: ignore[arg-type]
    assert exposed_series(metrics) == before


def test_tool_names_are_capped_and_odd_outcomes_count_as_errors() -> None:
    metrics = FleetMetrics()
    metrics.observe_tool("lookup_order", "ok", 0.12)
    metrics.observe_tool("lookup_order", "exploded", 0.5)
    for i in range(lv.MAX_TOOL_NAMES + 50):
        metrics.observe_tool(f"tool_{i}", "ok", 0.01)
    tools = {
        dict(labels)["tool"]
        for (name, labels) in exposed_series(metrics)
        if name == "voicefleet_tool_duration_seconds_count"
    }
    assert len(tools) == lv.MAX_TOOL_NAMES + 1  # the cap plus `other`
    assert "other" in tools
    assert value(metrics, "voicefleet_tool_duration_seconds_count", tool="lookup_order", outcome="error") == 1


def test_a_successful_resume_is_counted_and_timed_a_failed_one_only_counted() -> None:
    metrics = FleetMetrics()
    metrics.count_resume("other_worker", "ok", 0.42)
    metrics.count_resume("other_worker", "boom", 3.0)
    assert value(metrics, "voicefleet_resumes_total", kind="other_worker", outcome="ok") == 1
    assert value(metrics, "voicefleet_resumes_total", kind="other_worker", outcome="failed") == 1
    assert value(metrics, "voicefleet_resume_duration_seconds_count", kind="other_worker") == 1
    assert value(metrics, "voicefleet_resume_duration_seconds_sum", kind="other_worker") == 0.42


def test_gauges_and_audio_seconds() -> None:
    metrics = FleetMetrics()
    metrics.live_sessions.inc()
    metrics.live_sessions.inc()
    metrics.set_draining(True)
    metrics.set_redis_up(True)
    metrics.count_audio("output", 1.5)
    metrics.count_audio("output", -1.0)
    metrics.observe_relay("upstream_to_client", 0.0002)
    assert value(metrics, "voicefleet_live_sessions") == 2
    assert value(metrics, "voicefleet_draining") == 1
    assert value(metrics, "voicefleet_redis_up") == 1
    assert value(metrics, "voicefleet_audio_seconds_total", direction="output") == 1.5
    assert (
        value(
            metrics,
            "voicefleet_relay_added_latency_seconds_bucket",
            direction="upstream_to_client",
            le="0.00025",
        )
        == 1
    )


def test_each_instance_owns_its_registry_so_two_workers_in_one_process_do_not_collide() -> None:
    registry = CollectorRegistry()
    first = FleetMetrics(registry)
    second = FleetMetrics()
    first.sessions_started.inc()
    assert first.registry is registry
    assert value(first, "voicefleet_sessions_started_total") == 1
    assert value(second, "voicefleet_sessions_started_total") == 0
