"""The self-contained bench: the same load on every path, repeated, then the optional latency table, capacity
sweep and profile. Everything it starts it stops, and every loop is bounded by a count."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import math
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicefleet.bench import phases, procs, profiling, report
from voicefleet.bench.loadgen import SpeechTurn
from voicefleet.bench.stats import median_of, ratio

DEFAULT_CAPACITY_STEPS = (100, 200, 300, 400)


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    sessions: int = 100
    duration_s: float = 20.0
    repeats: int = 3
    paths: tuple[str, ...] = phases.PATHS
    profile: str = "none"
    latency_profile: str | None = None
    latency_sessions: int = 20
    latency_duration_s: float = 60.0
    find_capacity: bool = False
    capacity_steps: tuple[int, ...] = DEFAULT_CAPACITY_STEPS
    capacity_duration_s: float = 10.0
    idle_sessions: int = 100
    pin: bool = True
    stagger: bool = True
    turns: int | None = None
    py_spy: bool = False
    seed: int = 7
    warm: bool = True


def machine_facts(placement: procs.Placement) -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')} installed (the reference relays run on it)"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio (uvloop not installed)"
    return {
        "cpu_model": model,
        "cores": len(procs.cores()),
        "python": platform.python_version(),
        "loop": loop,
        "kernel": platform.release(),
        "pinned": placement.pinned,
        "subject_cores": sorted(placement.subject),
        "load_cores": sorted(placement.load),
    }


def _capacity(rig: phases.Rig, audio: SpeechTurn, options: SuiteOptions) -> dict[str, Any]:
    """Raise K until the worker adds more than 50 ms at P99 in either direction, errs, or drops sessions."""
    steps: list[dict[str, Any]] = []
    best = 0
    for sessions in options.capacity_steps:
        run = [
            phases.run_phase(rig, path, audio, sessions=sessions, duration_s=options.capacity_duration_s)
            for path in ("direct", "worker")
        ]
        extra = report.added(run)
        worker = run[1]
        ready = int(worker["sessions_ready"])
        worst = max(extra.get("c->u p99", math.inf), extra.get("u->c p99", math.inf))
        passed = (
            worst <= report.LIMITS["capacity_added_p99_ms"] and not worker["errors"] and ready == sessions
        )
        steps.append(
            {
                "sessions": sessions,
                "ready": ready,
                "c->u p99": extra.get("c->u p99", math.nan),
                "u->c p99": extra.get("u->c p99", math.nan),
                "worker core share": worker["subject"]["core_share"],
                "load-gen core share": worker["loadgen"]["core_share"],
                "errors": worker["errors"],
                "passed": passed,
                "load_side_bound": bool(worker["loadgen"]["bottleneck"]),
            }
        )
        if not passed:
            break
        best = sessions
    return {"steps": steps, "max_sessions": best}


def _profile_worker(rig: phases.Rig, audio: SpeechTurn, options: SuiteOptions) -> dict[str, Any]:
    """One extra worker phase with py-spy attached; its figures are not part of the medians."""
    out = rig.work_dir / "worker-profile.txt"
    recorders: list[subprocess.Popen[bytes]] = []
    rig.on_subject_start = lambda managed: recorders.append(
        profiling.start_recording(managed.pid, options.duration_s + 2.0, out)
    )
    try:
        phases.run_phase(rig, "worker", audio, sessions=options.sessions, duration_s=options.duration_s)
    finally:
        rig.on_subject_start = None
        for recorder in recorders:
            try:
                recorder.wait(15)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait(5)
    return profiling.fold_file(out)


def summarize(
    options: SuiteOptions, runs: list[list[dict[str, Any]]], idle: dict[str, list[float]]
) -> dict[str, Any]:
    figures = report.medians(runs)
    cpu = {
        path: figures.get(path, {}).get("CPU ms per session-s", math.nan)
        for path in ("worker", "raw", "naive")
    }
    direct = figures.get("direct", {})
    load_side = direct.get("core share", 0.0) + direct.get("load-gen core share", 0.0)
    warnings = [
        f"the load side (generator + simulator) used {load_side:.0%} of its core on the direct path: "
        "latency percentiles then include its queueing, on every path"
    ] * (load_side > phases.BOTTLENECK_SHARE)
    warnings += [
        f"the load generator used more than {phases.BOTTLENECK_SHARE:.0%} of its core on the {path} path: "
        "its figures may measure the generator"
        for path, f in figures.items()
        if f.get("load-gen bottleneck")
    ]
    return {
        "config": {
            "sessions": options.sessions,
            "duration_s": options.duration_s,
            "repeats": options.repeats,
            "profile": options.profile,
            "stagger": options.stagger,
        },
        "runs": runs,
        "median": figures,
        "added": report.median_added(runs),
        "ratios": {f"{base} relay": round(ratio(cpu["worker"], cpu[base]), 3) for base in ("raw", "naive")},
        "idle": {path: median_of(values) for path, values in idle.items()},
        "warnings": warnings,
    }


def run_suite(options: SuiteOptions, log: Any = print) -> dict[str, Any]:
    started = time.monotonic()
    placement = procs.Placement.choose(options.pin)
    audio = load_speech()
    runs: list[list[dict[str, Any]]] = []
    idle: dict[str, list[float]] = {}
    extras: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="voicefleet-bench-") as work:
        rig = phases.Rig(placement, Path(work), profile=options.profile, seed=options.seed, warm=options.warm)
        try:
            for repeat in range(options.repeats):
                run = []
                for path in options.paths:
                    log(f"run {repeat + 1}/{options.repeats}: {path}, {options.sessions} sessions")
                    run.append(
                        phases.run_phase(
                            rig,
                            path,
                            audio,
                            sessions=options.sessions,
                            duration_s=options.duration_s,
                            stagger=options.stagger,
                            turns=options.turns,
                        )
                    )
                runs.append(run)
                for path in ("worker", "raw"):
                    if path in options.paths and options.idle_sessions > 0:
                        log(
                            f"run {repeat + 1}/{options.repeats}: {path}, "
                            f"{options.idle_sessions} idle sessions"
                        )
                        memory = phases.idle_memory(rig, path, audio, options.idle_sessions)
                        idle.setdefault(path, []).append(float(memory["kb_per_session"]))
            if options.find_capacity:
                log("capacity sweep: " + ", ".join(map(str, options.capacity_steps)) + " sessions")
                extras["capacity"] = _capacity(rig, audio, options)
            if options.py_spy and profiling.pyspy_available():
                log("profiling the worker with py-spy")
                extras["worker_profile"] = _profile_worker(rig, audio, options)
        finally:
            rig.stop_all()
        if options.latency_profile:
            extras["latency"] = _latency(placement, Path(work), audio, options, log)
    summary = summarize(options, runs, idle)
    summary.update(extras)
    summary["machine"] = machine_facts(placement)
    profile = extras.get("worker_profile", {})
    if profile.get("samples"):
        # Which loop the worker really runs on shows in its stacks, whatever its settings say.
        frames = " ".join(name for name, _ in profile.get("self", []))
        summary["machine"]["worker loop (seen by py-spy)"] = (
            "asyncio selector loop" if "selector_events.py" in frames else "uvloop"
        )
    summary["targets"] = report.targets(summary)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    return summary


def _latency(
    placement: procs.Placement, work: Path, audio: SpeechTurn, options: SuiteOptions, log: Any
) -> dict[str, Any]:
    assert options.latency_profile is not None
    rig = phases.Rig(placement, work, profile=options.latency_profile, seed=options.seed, warm=options.warm)
    result: dict[str, Any] = {
        "profile": options.latency_profile,
        "sessions": options.latency_sessions,
        "duration_s": options.latency_duration_s,
    }
    try:
        for path in ("direct", "worker"):
            log(
                f"latency table: {path}, {options.latency_sessions} sessions, "
                f"profile {options.latency_profile}"
            )
            result[path] = phases.run_phase(
                rig, path, audio, sessions=options.latency_sessions, duration_s=options.latency_duration_s
            )
    finally:
        rig.stop_all()
    return result


def load_speech() -> SpeechTurn:
    from voicefleet.audio.speech import make_speech_pcm

    # About 2.5 s of speech: a realistic caller turn, long enough for server VAD to see speech clearly.
    return SpeechTurn.from_pcm(
        make_speech_pcm("What is the weather like in Paris today?", lead_silence_ms=200)
    )


def run_target(url: str, api_key: str, options: SuiteOptions) -> dict[str, Any]:
    """Load against something already running: no processes started, no CPU of the target measured."""
    from voicefleet.bench.directions import turn_latencies
    from voicefleet.bench.loadgen import LoadPlan, run_load
    from voicefleet.bench.stats import merge_counts, summarize_ms

    plan = LoadPlan(
        url,
        options.sessions,
        options.duration_s,
        api_key=api_key,
        turns=options.turns,
        stagger=options.stagger,
    )
    cpu = time.process_time()
    records = asyncio.run(run_load(plan, load_speech()))
    cpu = time.process_time() - cpu
    run_s = plan.ramp() + plan.duration_s
    return {
        "target": url,
        "sessions": plan.sessions,
        "sessions_ready": sum(1 for r in records if r.ready),
        "turns": sum(1 for r in records for t in r.turns if t.first_delta_at is not None),
        "turn_latency_ms": summarize_ms(turn_latencies(records)),
        "events_per_s": round(sum(r.events for r in records) / run_s, 1),
        "audio_deltas_per_s": round(sum(r.audio_deltas for r in records) / run_s, 1),
        "errors": merge_counts(r.errors for r in records),
        "loadgen": {
            "cpu_s": round(cpu, 3),
            "core_share": round(cpu / run_s, 4),
            "bottleneck": cpu / run_s > phases.BOTTLENECK_SHARE,
        },
    }
