"""Child processes of the local fleet: how to start one, tell it is healthy, and stop it for sure.

Every child gets its own process group (``start_new_session``) for two reasons: a terminal's Ctrl-C reaches
only the supervisor, which then stops children in a sensible order (edge, workers, upstream, Redis); and
stopping a group also stops whatever the child forked (nginx workers, uvicorn reloaders).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class StartupError(RuntimeError):
    """A child exited or stayed unhealthy while starting; the message carries the end of its log."""


class HealthCheck(Protocol):
    def __call__(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """Healthy when ``GET path`` answers 200."""

    host: str
    port: int
    path: str = "/healthz"

    def __call__(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2.0)
        try:
            conn.request("GET", self.path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


@dataclass(frozen=True, slots=True)
class RedisCheck:
    """Healthy when Redis answers PING; raw RESP keeps the supervisor free of a client library."""

    host: str
    port: int

    def __call__(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago. Racy by nature; callers start the child right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    """Full environment of the child (the supervisor builds it; nothing is inherited implicitly)."""
    health: HealthCheck | None = None
    stop_timeout_s: float = 10.0
    """How long SIGTERM may take before SIGKILL; a worker's must cover its drain timeout."""


class ManagedProcess:
    """One running (or stopped) child built from a ProcessSpec; it can be started again after it exits."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def start(self) -> None:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.spec.argv,
                env=dict(self.spec.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.starts += 1

    def exit_code(self) -> int | None:
        """None while running (or never started)."""
        return None if self.popen is None else self.popen.poll()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def healthy(self) -> bool:
        return self.running() and (self.spec.health is None or self.spec.health())

    def wait_healthy(self, timeout_s: float, abort: Callable[[], bool] = lambda: False) -> None:
        """Poll the health check until it passes; raises StartupError if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not abort():
            code = self.exit_code()
            if code is not None:
                raise StartupError(f"{self.name} exited with {code} while starting:\n{self.log_tail()}")
            if self.spec.health is None or self.spec.health():
                return
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} not healthy after {timeout_s:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.popen.pid, signum)

    def wait_exit(self, timeout_s: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM the group, wait with a bound, then SIGKILL; also sweeps a group whose leader has died."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        if self.wait_exit(self.spec.stop_timeout_s if timeout_s is None else timeout_s) is None:
            self.signal(signal.SIGKILL)
            self.popen.wait(5.0)
        # Children of the leader may outlive it (nginx workers); nothing in the group is meant to survive.
        self.signal(signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.spec.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
