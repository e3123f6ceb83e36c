"""A tiny real bench: simulator + worker + raw relay as processes, two sessions for a few seconds.

Asserts behaviour only (a report with the expected keys, counts above zero, no errors); never speed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from voicefleet.bench import command
from voicefleet.bench.suite import SuiteOptions, run_suite

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the speech fixture"),
]


def test_a_tiny_run_reports_every_path_with_turns_and_no_errors() -> None:
    options = SuiteOptions(
        sessions=2,
        duration_s=3.0,
        repeats=1,
        paths=("direct", "worker", "raw"),
        idle_sessions=2,
        turns=1,
        warm=False,
    )
    summary = run_suite(options, log=lambda _: None)
    for path in ("direct", "worker", "raw"):
        figures = summary["median"][path]
        assert figures["errors"] == {}
        assert figures["turns"] >= 2
        assert figures["c->u P50 ms"] > 0
        assert figures["u->c P50 ms"] > 0
        assert figures["audio deltas/s"] > 0
    assert summary["median"]["worker"]["CPU ms per session-s"] > 0
    assert set(summary["added"]) == {"c->u p50", "c->u p99", "u->c p50", "u->c p99", "turn p95"}
    assert summary["idle"]["worker"] == summary["idle"]["worker"]  # measured (not NaN)
    assert {t["name"] for t in summary["targets"]} >= {"memory per idle session (KB)"}


def test_the_command_writes_json_and_a_benchmarks_file(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    out, doc = tmp_path / "bench.json", tmp_path / "BENCHMARKS.md"
    args = parser.parse_args(
        ["-k", "1", "-t", "2", "--turns", "1", "--repeat", "1", "--paths", "direct,worker",
         "--idle-sessions", "0", "--no-warm", "--json", str(out), "--write", str(doc)]
    )  # fmt: skip
    assert command.run(args) == 0
    result = json.loads(out.read_text())
    assert result["median"]["worker"]["turns"] >= 1
    assert "## Targets" in doc.read_text()


def test_bad_arguments_are_refused_without_starting_anything() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--paths", "direct,nonsense"])) == 2
