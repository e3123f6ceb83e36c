"""Percentile math, one-way latency pairing, and report rendering: pure functions, no processes."""

from __future__ import annotations

import math

import pytest

from voicefleet.bench import directions, report
from voicefleet.bench.loadgen import SessionRecord, SpeechTurn, TurnRecord, event_type
from voicefleet.bench.profiling import fold
from voicefleet.bench.stats import difference, median_of, percentile, summarize_ms


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_is_nan_and_out_of_range_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_is_in_milliseconds_and_difference_is_per_percentile() -> None:
    summary = summarize_ms([0.001, 0.002, 0.003])
    assert summary["count"] == 3
    assert summary["p50"] == pytest.approx(2.0)
    assert summary["max"] == pytest.approx(3.0)
    assert difference(summarize_ms([0.002] * 3), summary)["p50"] == pytest.approx(0.0)


def test_median_of_runs_ignores_runs_without_a_figure() -> None:
    assert median_of([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(median_of([math.nan]))


def test_event_type_is_read_from_the_head_without_parsing() -> None:
    assert (
        event_type(b'{"type":"response.output_audio.delta","delta":"AAAA"}') == "response.output_audio.delta"
    )
    assert event_type(b'{"type": "spaced"}') is None


def test_speech_turn_splits_into_20_ms_frames_and_pads_the_last() -> None:
    turn = SpeechTurn.from_pcm(b"\x01\x00" * 1000)  # 2000 bytes: two full frames and a partial one
    assert len(turn.speech) == 3
    assert len(turn.silence) == len(turn.speech[0]) == 1280  # 960 bytes of PCM in base64


def _record() -> SessionRecord:
    record = SessionRecord(index=0, sent_at=[10.0, 10.02, 10.04, 10.06])
    record.turns.append(TurnRecord(audio_end_ms=60, stopped_at=10.0660, first_delta_at=10.0670))
    return record


def test_one_way_pairs_sends_with_arrivals_and_the_stop_with_its_append() -> None:
    arrivals = {"t0-0": 10.001, "t0-1": 10.021, "t0-2": 10.042, "t0-3": 10.0625}
    ways = directions.one_way([_record()], arrivals, "t")
    assert ways.client_to_upstream == pytest.approx([0.001, 0.001, 0.002, 0.0025])
    # audio_end_ms 60 -> append 2 (covering 40..60 ms); the stop reached the client 24 ms after it arrived
    assert ways.upstream_to_client == pytest.approx([0.024])
    assert directions.calibrate_offset([_record()], arrivals, "t") == 1
    shifted = directions.one_way([_record()], arrivals, "t", offset=1)
    assert shifted.upstream_to_client == pytest.approx([0.0035])
    assert directions.turn_latencies([_record()]) == pytest.approx([0.001])


def _phase(path: str, cpu: float, c2u: float, errors: dict[str, int] | None = None) -> dict[str, object]:
    summary = {"count": 10.0, "p50": c2u / 2, "p95": c2u, "p99": c2u, "max": c2u}
    return {
        "path": path,
        "turns": 10,
        "errors": errors or {},
        "turn_latency_ms": summary,
        "client_to_upstream_ms": summary,
        "upstream_to_client_ms": summary,
        "events_per_s": 100.0,
        "audio_deltas_per_s": 50.0,
        "subject": {"cpu_ms_per_session_s": cpu, "core_share": 0.1, "rss_peak_mb": 50.0},
        "loadgen": {"core_share": 0.2, "bottleneck": False},
    }


def test_report_takes_medians_ratios_and_states_each_target() -> None:
    runs = [
        [_phase("direct", 9.0, 1.0), _phase("worker", w, 2.0), _phase("raw", 2.0, 1.5)]
        for w in (3.0, 4.0, 30.0)
    ]
    summary: dict[str, object] = {
        "config": {"sessions": 100},
        "median": report.medians(runs),
        "added": report.median_added(runs),
        "idle": {"worker": 80.0},
        "capacity": {"max_sessions": 100, "steps": []},
    }
    assert summary["median"]["worker"]["CPU ms per session-s"] == 4.0  # type: ignore[index]
    assert summary["added"]["c->u p99"] == pytest.approx(1.0)  # type: ignore[index]
    verdicts = {row["name"]: row["met"] for row in report.targets(summary)}
    assert verdicts["worker CPU per session vs raw relay"] is False  # 4.0 / 2.0 = 2x
    assert verdicts["p99 added latency each way at K=100, no errors"] is True
    assert verdicts["memory per idle session (KB)"] is True
    assert verdicts["sessions per worker core at p99 added <= 50 ms"] is False
    table = report.paths_table(summary["median"])  # type: ignore[arg-type]
    assert table.splitlines()[0] == "| metric | direct | worker | raw |"


def test_document_names_the_command_and_every_section() -> None:
    from voicefleet.bench.document import render_document

    runs = [[_phase("direct", 9.0, 1.0), _phase("worker", 3.0, 2.0)]]
    summary = {"config": {"sessions": 2, "repeats": 1}, "median": report.medians(runs), "targets": [],
               "machine": {"cores": 2}, "added": report.median_added(runs)}  # fmt: skip
    text = render_document(summary, ["bench", "--write", "BENCHMARKS.md"])
    assert "voicefleet bench --write BENCHMARKS.md" in text
    assert "## Targets" in text and "## How it is measured" in text


def test_profile_folds_samples_by_area_and_function() -> None:
    raw = (
        "main (voicefleet/cli.py:1);_read_client (voicefleet/worker/runner.py:9);loads (orjson:1) 3\n"
        "main (voicefleet/cli.py:1);select (/usr/lib/python3.11/selectors.py:468) 1\n"
    )
    folded = fold(raw)
    assert folded["samples"] == 4
    assert dict(folded["areas"])["waiting in epoll (idle, not work)"] == 25.0
    assert dict(folded["inclusive_ours"])["_read_client (runner.py)"] == 75.0
