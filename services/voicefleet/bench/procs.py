"""Processes under test: start them on free loopback ports, pin them to a core, watch their CPU and memory,
and stop them by PID (terminate, bounded wait, kill)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class Placement:
    """Which cores the process under test and the load side (generator + simulator) run on.

    On one core there is nothing to separate, and the figures say so (pinned=False)."""

    subject: frozenset[int]
    load: frozenset[int]
    pinned: bool

    @classmethod
    def choose(cls, pin: bool) -> Placement:
        available = cores()
        if not pin or len(available) < 2:
            every = frozenset(available)
            return cls(every, every, False)
        return cls(frozenset({available[-1]}), frozenset(available[:-1]), True)


@dataclass(slots=True)
class Managed:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


def voicefleet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "voicefleet.cli", *args]


def start(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    cores_: frozenset[int],
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> Managed:
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    managed = Managed(name, process, port, log_path)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(process.pid, cores_)
    try:
        wait_listening(managed)
    except Exception:
        managed.stop()
        raise
    return managed


def wait_listening(managed: Managed, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until the port accepts TCP connections (every server here binds only when it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            tail = managed.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{managed.name} exited with {managed.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", managed.port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{managed.name} did not listen on port {managed.port} within {timeout:.0f} s")


@dataclass(slots=True)
class Usage:
    """CPU and memory of a set of processes over a window."""

    cpu_s: float = 0.0
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    samples: list[int] = field(default_factory=list)


class Watch:
    """Samples the RSS of some processes while the load runs, and takes CPU time at the window's edges."""

    def __init__(self, pids: Sequence[int], interval_s: float = 0.25) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.interval_s = interval_s
        self.usage = Usage()
        self._cpu_start = 0.0

    def _cpu(self) -> float:
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def _rss(self) -> int:
        total = 0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def begin(self) -> None:
        self._cpu_start = self._cpu()
        self.usage.rss_start = self._rss()

    def end(self) -> None:
        self.usage.cpu_s = self._cpu() - self._cpu_start
        self.usage.rss_end = self._rss()

    async def sample_until(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            rss = self._rss()
            self.usage.samples.append(rss)
            self.usage.rss_peak = max(self.usage.rss_peak, rss)
            await asyncio.sleep(self.interval_s)
