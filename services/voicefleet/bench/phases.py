"""One measured phase: the same load against one path (simulator direct, worker, raw relay, naive relay).

A `Rig` owns the simulator for a whole bench run (warmed once: its first reply runs espeak-ng) and starts each
process under test fresh, pinned to its own core, so its CPU and memory belong to that phase alone.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicefleet.bench import procs
from voicefleet.bench.directions import calibrate_offset, one_way, read_arrivals, turn_latencies
from voicefleet.bench.loadgen import LoadPlan, SessionRecord, SpeechTurn, run_load
from voicefleet.bench.stats import merge_counts, summarize_ms

PATHS = ("direct", "worker", "raw", "naive")
BOTTLENECK_SHARE = 0.8  # the generator using more than this share of its core may be what limits the run
_API_KEY = "bench-key"
_BASELINE_MODULES = {
    "raw": "voicefleet.bench.baselines.raw_relay",
    "naive": "voicefleet.bench.baselines.naive_relay",
}


@dataclass(slots=True)
class Rig:
    placement: procs.Placement
    work_dir: Path
    profile: str = "none"
    seed: int = 7
    warm: bool = True
    """Run one turn on each new simulator before measuring (its first reply runs espeak-ng)."""
    vad_offset: int | None = None
    """Appends between audio_end_ms and the VAD's decision; calibrated by the first phase (direct, light)."""
    simulator: procs.Managed | None = None
    on_subject_start: Callable[[procs.Managed], None] | None = None
    """Called with each process under test once it listens (e.g. to attach a profiler)."""
    _log_offset: int = 0
    _runs: int = 0
    _subjects: list[procs.Managed] = field(default_factory=list)

    @property
    def event_log(self) -> Path:
        return self.work_dir / f"simulator-{self.profile}.jsonl"

    def simulator_url(self) -> str:
        assert self.simulator is not None
        return f"ws://127.0.0.1:{self.simulator.port}/v1/realtime"

    def restart_simulator(self, audio: SpeechTurn) -> None:
        """A fresh simulator per phase: it keeps a record of every session it served, and a long-lived one
        slows down as that record grows (seen as P99s climbing run after run), which would bill later phases."""
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        self.start_simulator(audio)

    def start_simulator(self, audio: SpeechTurn) -> None:
        self._log_offset = self.event_log.stat().st_size if self.event_log.exists() else 0
        port = procs.free_port()
        command = procs.voicefleet_command(
            "simulator",
            "--port",
            str(port),
            "--profile",
            self.profile,
            "--seed",
            str(self.seed),
            "--event-log",
            str(self.event_log),
        )
        self.simulator = procs.start(
            "simulator", command, port, cores_=self.placement.load, log_dir=self.work_dir
        )
        if not self.warm:
            return
        # The first reply synthesizes speech (a subprocess); keep that out of every measured phase.
        warm = LoadPlan(self.simulator_url() + "?model=gpt-realtime", 1, 20.0, turns=1, tag="warm")
        asyncio.run(run_load(warm, audio))

    def start_subject(self, path: str) -> procs.Managed | None:
        """The process under test for `path` (None for direct: the simulator is the target)."""
        if path == "direct":
            return None
        port = procs.free_port()
        if path == "worker":
            command = procs.voicefleet_command("worker", "--host", "127.0.0.1", "--port", str(port))
            env = {"VOICEFLEET_UPSTREAM_URL": self.simulator_url(), "VOICEFLEET_API_KEYS": _API_KEY}
        else:
            module = _BASELINE_MODULES[path]
            command = [sys.executable, "-m", module, "--port", str(port), "--upstream", self.simulator_url()]
            env = {}
        managed = procs.start(
            path, command, port, cores_=self.placement.subject, log_dir=self.work_dir, env=env
        )
        self._subjects.append(managed)
        if self.on_subject_start is not None:
            self.on_subject_start(managed)
        return managed

    def stop_all(self) -> None:
        for managed in [*self._subjects, *([self.simulator] if self.simulator else [])]:
            managed.stop()
        self._subjects.clear()
        self.simulator = None

    def next_tag(self) -> str:
        self._runs += 1
        return f"r{self._runs}s"

    def new_arrivals(self, tag: str) -> dict[str, float]:
        """Appends of this phase only: the log is read from where the previous phase left it."""
        log = self.event_log
        arrivals = read_arrivals(log, tag, self._log_offset)
        self._log_offset = log.stat().st_size if log.exists() else 0
        return arrivals


def target_url(rig: Rig, subject: procs.Managed | None) -> str:
    if subject is None:
        return rig.simulator_url() + "?model=gpt-realtime"
    return f"ws://127.0.0.1:{subject.port}/v1/realtime?model=gpt-realtime"


async def _measure(
    plan: LoadPlan, audio: SpeechTurn, pids: list[int]
) -> tuple[list[SessionRecord], dict[str, Any]]:
    """Run the load; CPU is taken over the steady window (all sessions started, before they stop)."""
    watch = procs.Watch(pids)
    begin = time.monotonic() + 0.2
    steady_from = begin + plan.ramp() + 1.0
    steady_to = begin + plan.ramp() + plan.duration_s
    load = asyncio.create_task(run_load(plan, audio, begin_at=begin))
    watch.begin()
    rss_before = watch.usage.rss_start  # before any session opens (the subject is already warm)
    await asyncio.sleep(max(0.0, steady_from - time.monotonic()))
    watch.begin()  # CPU counts from here
    own_cpu = time.process_time()
    await watch.sample_until(steady_to)
    watch.end()
    own_cpu = time.process_time() - own_cpu
    records = await load
    window = steady_to - steady_from
    usage = watch.usage
    tail = usage.samples[len(usage.samples) // 2 :] or [usage.rss_end]
    facts = {
        "window_s": round(window, 3),
        "window": (steady_from, steady_to),
        "cpu_s": round(usage.cpu_s, 3),
        "rss_before": rss_before,
        "rss_active": int(statistics.median(tail)),
        "rss_peak": max(usage.rss_peak, rss_before),
        "loadgen_cpu_s": round(own_cpu, 3),
    }
    return records, facts


def run_phase(
    rig: Rig,
    path: str,
    audio: SpeechTurn,
    *,
    sessions: int,
    duration_s: float,
    stagger: bool = True,
    turns: int | None = None,
) -> dict[str, Any]:
    rig.restart_simulator(audio)
    subject = rig.start_subject(path)
    try:
        url = target_url(rig, subject)
        # A short session first: imports and first-use allocations are not per-session costs.
        asyncio.run(run_load(LoadPlan(url, 1, 0.5, api_key=_API_KEY, idle=True, tag="w"), audio))
        tag = rig.next_tag()
        plan = LoadPlan(url, sessions, duration_s, api_key=_API_KEY, turns=turns, stagger=stagger, tag=tag)
        pids = [subject.pid] if subject else [rig.simulator.pid] if rig.simulator else []
        records, facts = asyncio.run(_measure(plan, audio, pids))
    finally:
        if subject is not None:
            subject.stop()
    arrivals = rig.new_arrivals(tag)
    if rig.vad_offset is None:
        rig.vad_offset = calibrate_offset(records, arrivals, tag)
    return summarize_phase(
        path, plan, records, facts=facts, arrivals=arrivals, profile=rig.profile, vad_offset=rig.vad_offset
    )


def summarize_phase(
    path: str,
    plan: LoadPlan,
    records: list[SessionRecord],
    *,
    facts: dict[str, Any],
    arrivals: dict[str, float],
    profile: str,
    vad_offset: int,
) -> dict[str, Any]:
    window = float(facts["window_s"]) or 1.0
    ways = one_way(records, arrivals, plan.tag, offset=vad_offset, window=facts["window"])
    sessions = max(1, plan.sessions)
    events = sum(r.events for r in records)
    deltas = sum(r.audio_deltas for r in records)
    run_s = plan.ramp() + plan.duration_s
    loadgen_share = facts["loadgen_cpu_s"] / window
    return {
        "path": path,
        "profile": profile,
        "sessions": plan.sessions,
        "duration_s": plan.duration_s,
        "stagger": plan.stagger,
        "sessions_ready": sum(1 for r in records if r.ready),
        "turns": sum(1 for r in records for t in r.turns if t.first_delta_at is not None),
        "turn_latency_ms": summarize_ms(turn_latencies(records)),
        "client_to_upstream_ms": summarize_ms(ways.client_to_upstream),
        "upstream_to_client_ms": summarize_ms(ways.upstream_to_client),
        "events_per_s": round(events / run_s, 1),
        "audio_deltas_per_s": round(deltas / run_s, 1),
        "errors": merge_counts(r.errors for r in records),
        "subject": {
            "cpu_s": facts["cpu_s"],
            "core_share": round(facts["cpu_s"] / window, 4),
            "cpu_ms_per_session_s": round(1000.0 * facts["cpu_s"] / window / sessions, 4),
            "rss_peak_mb": round(facts["rss_peak"] / 2**20, 2),
            "active_kb_per_session": round((facts["rss_active"] - facts["rss_before"]) / 1024 / sessions, 1),
        },
        "loadgen": {
            "cpu_s": facts["loadgen_cpu_s"],
            "core_share": round(loadgen_share, 4),
            "bottleneck": loadgen_share > BOTTLENECK_SHARE,
            "max_lag_ms": round(1000.0 * max((r.max_lag_s for r in records), default=0.0), 1),
        },
    }


def idle_memory(rig: Rig, path: str, audio: SpeechTurn, sessions: int, hold_s: float = 4.0) -> dict[str, Any]:
    """RSS growth of the process under test per open session that sends nothing."""
    rig.restart_simulator(audio)
    subject = rig.start_subject(path)
    assert subject is not None
    try:
        url = target_url(rig, subject)
        asyncio.run(run_load(LoadPlan(url, 2, 0.5, api_key=_API_KEY, idle=True, tag="w"), audio))
        plan = LoadPlan(url, sessions, hold_s, api_key=_API_KEY, idle=True, tag="idle")
        records, facts = asyncio.run(_measure(plan, audio, [subject.pid]))
    finally:
        subject.stop()
    ready = sum(1 for r in records if r.ready)
    return {
        "path": path,
        "sessions": sessions,
        "sessions_ready": ready,
        "kb_per_session": round((facts["rss_active"] - facts["rss_before"]) / 1024 / max(1, ready), 1),
        "rss_before_mb": round(facts["rss_before"] / 2**20, 2),
        "rss_idle_mb": round(facts["rss_active"] / 2**20, 2),
        "errors": merge_counts(r.errors for r in records),
    }
