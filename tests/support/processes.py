"""Real processes for tests: redis-server, the simulator and workers on loopback, stopped by PID."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from voicefleet.fleet.procs import HttpCheck, ManagedProcess, ProcessSpec, RedisCheck, free_port

VOICEFLEET = str(Path(sys.executable).with_name("voicefleet"))
CLIENT_KEY = "test-client-key"
TOKEN_SECRET = "test-token-secret"

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


def base_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT"}}
    keep.update({"VOICEFLEET_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    keep.update(extra)
    return keep


def start_redis(tmp: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = ("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp))  # fmt: skip
    proc = ManagedProcess(
        ProcessSpec("redis", argv, tmp / f"redis-{port}.log", base_env(), RedisCheck("127.0.0.1", port))
    )
    proc.start()
    proc.wait_healthy(15.0)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_simulator(tmp: Path, *args: str, port: int | None = None) -> tuple[ManagedProcess, int]:
    port = port or free_port()
    argv = (VOICEFLEET, "simulator", "--host", "127.0.0.1", "--port", str(port), "--event-log",
            str(tmp / f"sim-{port}.jsonl"), *args)  # fmt: skip
    proc = ManagedProcess(
        ProcessSpec("simulator", argv, tmp / f"sim-{port}.log", base_env(), HttpCheck("127.0.0.1", port))
    )
    proc.start()
    proc.wait_healthy(30.0)
    return proc, port


def worker_env(upstream_port: int, **extra: str) -> dict[str, str]:
    settings = {
        "VOICEFLEET_UPSTREAM_URL": f"ws://127.0.0.1:{upstream_port}/v1/realtime",
        "VOICEFLEET_API_KEYS": CLIENT_KEY,
        "VOICEFLEET_TOKEN_SECRET": TOKEN_SECRET,
        "OPENAI_API_KEY": "sk-upstream-secret-never-logged",
    }
    return base_env(**{**settings, **extra})


def start_worker(
    tmp: Path, env: Mapping[str, str], *, port: int | None = None, name: str = "worker"
) -> tuple[ManagedProcess, int]:
    port = port or free_port()
    argv = (VOICEFLEET, "worker", "--host", "127.0.0.1", "--port", str(port))
    proc = ManagedProcess(
        ProcessSpec(
            name, argv, tmp / f"{name}-{port}.log", dict(env), HttpCheck("127.0.0.1", port), stop_timeout_s=15
        )
    )
    proc.start()
    proc.wait_healthy(30.0)
    return proc, port
