"""`voicefleet bench`: load a Realtime endpoint with K speaking sessions and report latency, CPU and memory.

Without --target it is self-contained: it starts a simulator, then the worker and two reference relays one at
a time on their own core, runs the same load directly and through each, and reports what each path adds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from voicefleet.bench import phases, report
from voicefleet.bench.suite import DEFAULT_CAPACITY_STEPS, SuiteOptions, run_suite, run_target

PROFILES = ("none", "us-east", "eu-west", "ap-tokyo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="ws URL of something already running (edge, worker or simulator)")
    parser.add_argument(
        "--api-key", default="bench", help="client key sent as Authorization: Bearer (--target)"
    )
    parser.add_argument("--sessions", "-k", type=int, default=100, help="concurrent sessions (default 100)")
    parser.add_argument(
        "--duration", "-t", type=float, default=20.0, help="seconds of load per run (default 20)"
    )
    parser.add_argument("--turns", type=int, default=None, help="stop each session after N turns")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per path; figures are medians (default 3)"
    )
    parser.add_argument(
        "--paths", default=",".join(phases.PATHS), help="paths to run: direct,worker,raw,naive (default all)"
    )
    parser.add_argument("--profile", choices=PROFILES, default="none", help="simulator latency profile")
    parser.add_argument(
        "--latency-profile",
        choices=PROFILES[1:],
        default=None,
        help="also run the turn-latency table with it",
    )
    parser.add_argument("--latency-sessions", type=int, default=20)
    parser.add_argument("--latency-duration", type=float, default=60.0)
    parser.add_argument(
        "--find-capacity", action="store_true", help="sweep K to find one worker core's limit"
    )
    parser.add_argument(
        "--capacity-steps",
        default=",".join(map(str, DEFAULT_CAPACITY_STEPS)),
        help="session counts the sweep tries, in order",
    )
    parser.add_argument("--capacity-duration", type=float, default=10.0)
    parser.add_argument("--idle-sessions", type=int, default=100, help="idle sessions for memory (0: skip)")
    parser.add_argument("--py-spy", action="store_true", help="profile one extra worker run with py-spy")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--no-stagger", action="store_true", help="start every session at once")
    parser.add_argument("--seed", type=int, default=7, help="simulator latency seed")
    parser.add_argument(
        "--no-warm", action="store_true", help="skip the warm-up turn on each simulator (quick smoke runs)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--write", type=Path, default=None, metavar="FILE", help="(re)generate a BENCHMARKS.md from this run"
    )


def options_from(args: argparse.Namespace) -> SuiteOptions:
    paths = tuple(p for p in args.paths.split(",") if p)
    unknown = set(paths) - set(phases.PATHS)
    if unknown:
        raise ValueError(f"unknown paths: {', '.join(sorted(unknown))}")
    if args.sessions < 1 or args.duration <= 0 or args.repeat < 1:
        raise ValueError("--sessions, --duration and --repeat must be positive")
    return SuiteOptions(
        sessions=args.sessions,
        duration_s=args.duration,
        repeats=args.repeat,
        paths=paths,
        profile=args.profile,
        latency_profile=args.latency_profile,
        latency_sessions=args.latency_sessions,
        latency_duration_s=args.latency_duration,
        find_capacity=args.find_capacity,
        capacity_steps=tuple(int(k) for k in args.capacity_steps.split(",") if k),
        capacity_duration_s=args.capacity_duration,
        idle_sessions=args.idle_sessions,
        pin=not args.no_pin,
        stagger=not args.no_stagger,
        turns=args.turns,
        py_spy=args.py_spy,
        seed=args.seed,
        warm=not args.no_warm,
    )


def _clean(value: Any) -> Any:
    """JSON without NaN (not valid JSON): unmeasured figures become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"voicefleet bench: {exc}", file=sys.stderr)
        return 2
    if args.target:
        result = run_target(args.target, args.api_key, options)
        print(json.dumps(_clean(result), indent=2))
        if result["loadgen"]["bottleneck"]:
            print("WARNING: the load generator is the bottleneck (> 80% of a core)", file=sys.stderr)
    else:
        result = run_suite(options, log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
        print(report.terminal_report(result))
        if args.write:
            from voicefleet.bench.document import render_document

            args.write.write_text(render_document(result, sys.argv[1:]))
            print(f"bench: wrote {args.write}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(_clean(result), indent=2) + "\n")
    # Errors seen under load are findings, reported in the tables; only a --target run fails on them, so a
    # script can use it as a smoke test.
    return 1 if args.target and result.get("errors") else 0
