"""The local fleet supervisor: Redis, the simulator, N workers and the nginx edge, started and kept alive.

A plain synchronous class so it can be driven in-process (tests call start, supervise_once, rolling_restart,
stop) or as ``voicefleet fleet``. Workers keep their port across restarts, so the edge config never changes
and nginx needs no reload; only a worker whose port has been taken moves, and then the edge is reloaded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from voicefleet.fleet import edge, prometheus
from voicefleet.fleet.procs import HttpCheck, ManagedProcess, ProcessSpec, RedisCheck, StartupError, free_port

WORKER_HOST = "127.0.0.1"
"""Workers listen on loopback only: the edge is the fleet's one public door."""
MOVE_AFTER_FAILURES = 3
"""Consecutive failed starts after which a worker gets a new port (its old one may have been taken)."""


def _say(message: str) -> None:
    print(f"fleet: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class FleetOptions:
    state_dir: Path
    """Logs, the nginx prefix, Prometheus targets and the pid file of the running fleet."""
    workers: int = 2
    host: str = "127.0.0.1"
    """Address the edge listens on."""
    edge_port: int = 8080
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    simulator_profile: str = ""
    with_prometheus: bool = False
    prometheus_port: int = 9090
    prometheus_config: Path | None = None
    """The deploy Prometheus config whose rules the local Prometheus loads (scrape jobs are replaced)."""
    edge_template: Path | None = None
    tls: edge.TlsSettings | None = None
    expose_upstream_header: bool = True
    """Dev fleets tell clients which worker served them (X-Voicefleet-Upstream); tests rely on it."""
    edge_fail_timeout_s: int = 5
    """nginx skips a worker this long after failed connects. A rolling restart waits this long after each
    worker is back (and the edge reloaded) before taking the next one out."""
    worker_command: tuple[str, ...] = ()
    """Runs one worker when given ``--host H --port P`` (default: this interpreter's ``voicefleet worker``).
    For running workers from another environment or under a profiler; tests use a stand-in."""
    health_timeout_s: float = 30.0
    restart_backoff_s: float = 0.5
    max_restart_backoff_s: float = 30.0
    stable_after_s: float = 30.0
    """A child that ran this long before dying is restarted without backoff: it is not crash-looping."""


class Fleet:
    def __init__(self, options: FleetOptions, say: Callable[[str], None] = _say) -> None:
        self.options = options
        self.say = say
        env = options.env
        keys = [k.strip() for k in env.get("VOICEFLEET_API_KEYS", "").split(",") if k.strip()]
        self.generated_api_key = not keys
        self.api_key = keys[0] if keys else "vf-dev-" + secrets.token_urlsafe(18)
        self.api_keys = ",".join(keys) if keys else self.api_key
        self.token_secret = env.get("VOICEFLEET_TOKEN_SECRET") or secrets.token_hex(32)
        self.redis_url = env.get("VOICEFLEET_REDIS_URL", "")
        self.upstream_url = env.get("VOICEFLEET_UPSTREAM_URL", "")
        self.processes: dict[str, ManagedProcess] = {}
        self.worker_ports: dict[str, int] = {}
        self._restart_due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()

    # --- addresses ------------------------------------------------------------------------------------------
    @property
    def edge_url(self) -> str:
        return f"http://{self.options.host}:{self.options.edge_port}"

    @property
    def realtime_url(self) -> str:
        return f"ws://{self.options.host}:{self.options.edge_port}/v1/realtime"

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, self.options.workers + 1)]

    def worker_by_address(self, address: str) -> str | None:
        """Map an upstream ``host:port`` (nginx's $upstream_addr) back to the worker name."""
        for name, port in self.worker_ports.items():
            if address == f"{WORKER_HOST}:{port}":
                return name
        return None

    @property
    def state_dir(self) -> Path:
        return self.options.state_dir

    @property
    def edge_prefix(self) -> Path:
        return self.state_dir / "edge"

    @property
    def targets_path(self) -> Path:
        return self.state_dir / "prometheus" / "targets.json"

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything and wait until healthy; on any failure stop what did start, then raise."""
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        self._check_tools()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.redis_url:
            port = free_port()
            self._launch(self._redis_spec(port))
            self.redis_url = f"redis://{WORKER_HOST}:{port}/0"
        if not self.upstream_url and not self.options.env.get("OPENAI_API_KEY"):
            port = free_port()
            self._launch(self._simulator_spec(port))
            self.upstream_url = f"ws://{WORKER_HOST}:{port}/v1/realtime"
        for name in self.worker_names:
            self.worker_ports[name] = free_port()
            self._launch(self._worker_spec(name), wait=False)
        for name in self.worker_names:  # started together, awaited together: workers boot in parallel
            self.processes[name].wait_healthy(self.options.health_timeout_s, self._stopping.is_set)
        self._write_targets()
        self._launch(self._edge_spec())
        if self.options.with_prometheus:
            self._launch(self._prometheus_spec())

    def _launch(self, spec: ProcessSpec, wait: bool = True) -> ManagedProcess:
        proc = ManagedProcess(spec)
        self.processes[spec.name] = proc
        proc.start()
        if wait:
            proc.wait_healthy(self.options.health_timeout_s, self._stopping.is_set)
        return proc

    def stop(self) -> None:
        """Edge first (no new sessions), then workers together (each drains), then upstream and Redis last,
        because draining workers still checkpoint to Redis."""
        self._stopping.set()
        with self._lock:
            order = ["prometheus", "edge"]
            for name in order:
                if name in self.processes:
                    self.processes[name].stop()
            workers = [p for n, p in self.processes.items() if n in self.worker_ports]
            for proc in workers:
                proc.signal(signal.SIGTERM)
            for proc in workers:
                proc.stop()
            for name in ("simulator", "redis"):
                if name in self.processes:
                    self.processes[name].stop()

    def supervise_once(self) -> None:
        """Restart children that died, with exponential backoff for ones that keep dying."""
        with self._lock:
            now = time.monotonic()
            for name, proc in self.processes.items():
                if self._stopping.is_set() or proc.running():
                    continue
                due = self._restart_due.get(name)
                if due is None:
                    ran = now - proc.started_at
                    failures = 0 if ran >= self.options.stable_after_s else self._failures.get(name, 0) + 1
                    self._failures[name] = failures
                    delay = min(
                        self.options.max_restart_backoff_s,
                        self.options.restart_backoff_s * 2 ** (failures - 1),
                    )
                    delay = 0.0 if failures == 0 else delay
                    self.say(
                        f"{name} exited with {proc.exit_code()} after {ran:.1f}s; restarting in {delay:.1f}s"
                    )
                    self._restart_due[name] = now + delay
                elif now >= due:
                    self._restart(name)

    def _restart(self, name: str) -> None:
        del self._restart_due[name]
        if name in self.worker_ports and self._failures.get(name, 0) >= MOVE_AFTER_FAILURES:
            self._move_worker(name)
        proc = self.processes[name]
        proc.stop(timeout_s=1.0)  # sweep leftovers of the dead group before reusing its port
        try:
            proc.start()
            proc.wait_healthy(self.options.health_timeout_s, self._stopping.is_set)
            self.say(f"{name} is back (pid {proc.pid})")
        except StartupError as exc:
            self.say(str(exc))
            return
        if name in self.worker_ports:
            self._edge_forgets_failures(name)

    def _edge_forgets_failures(self, name: str) -> None:
        """Reload the edge once a worker is back, so nginx stops counting it as down.

        nginx clears a worker's failures only when a connection to it ends well, and a WebSocket ends when the
        session does. After fail_timeout a worker that failed (killed, restarting, or draining with 503s) gets
        one trial connection; while that session lives, the worker stays marked down and receives one new
        session per fail_timeout. In a rolling restart the restarted workers stayed down at the edge that way,
        and the last worker's drain met "no live upstreams" (502). Reloaded edge processes start with no
        failure history; the old ones keep the live WebSockets until those end."""
        edge_proc = self.processes.get("edge")
        if edge_proc is None or not edge_proc.running():
            return
        try:
            edge.reload(self.edge_prefix, self.edge_prefix / "nginx.conf")
        except (edge.EdgeError, OSError, subprocess.SubprocessError) as exc:
            self.say(f"edge reload after {name} came back failed: {exc}")

    def _move_worker(self, name: str) -> None:
        self.worker_ports[name] = free_port()
        self.processes[name] = ManagedProcess(self._worker_spec(name))
        self._write_targets()
        conf = edge.write_prefix(self.edge_prefix, self._render_edge())
        edge.reload(self.edge_prefix, conf)
        self.say(f"{name} moved to port {self.worker_ports[name]}; edge reloaded")

    def run(
        self, stop: threading.Event, rolling: threading.Event | None = None, poll_s: float = 0.25
    ) -> None:
        """Supervise until ``stop`` is set; a set ``rolling`` event triggers one rolling restart."""
        while not stop.wait(poll_s):
            if rolling is not None and rolling.is_set():
                rolling.clear()
                self.rolling_restart()
            self.supervise_once()

    def rolling_restart(self) -> None:
        """Drain and replace workers one at a time: SIGTERM, wait for the worker's own drain, same-port start,
        wait ready, next. nginx fails over new sessions meanwhile; live ones get fleet.migrate and resume."""
        with self._lock:
            for name in self.worker_names:
                if self._stopping.is_set():
                    return
                proc = self.processes[name]
                self.say(f"rolling restart: draining {name} (pid {proc.pid})")
                proc.signal(signal.SIGTERM)
                deadline = time.monotonic() + proc.spec.stop_timeout_s
                while proc.wait_exit(0.2) is None and time.monotonic() < deadline:
                    if self._stopping.is_set():
                        return
                proc.stop(timeout_s=1.0)
                proc.start()
                proc.wait_healthy(self.options.health_timeout_s, self._stopping.is_set)
                self._restart_due.pop(name, None)
                self.say(f"rolling restart: {name} ready (pid {proc.pid})")
                self._edge_forgets_failures(name)
                if name != self.worker_names[-1]:
                    # Time for the reloaded edge to take over from the old processes, which still count this
                    # worker as down, before another worker refuses sessions.
                    self._stopping.wait(self.options.edge_fail_timeout_s)

    # --- specs ----------------------------------------------------------------------------------------------
    def _log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _check_tools(self) -> None:
        edge.nginx_binary()
        if not self.redis_url and shutil.which("redis-server") is None:
            raise edge.EdgeError(
                f"redis-server is not installed; {edge.INSTALL_HINT} (or set VOICEFLEET_REDIS_URL)"
            )
        if self.options.with_prometheus and shutil.which("prometheus") is None:
            raise edge.EdgeError("prometheus is not installed; install it with: apt-get install prometheus")

    def _redis_spec(self, port: int) -> ProcessSpec:
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--bind",
            WORKER_HOST,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        argv += ["--dir", str(data)]
        return ProcessSpec(
            "redis", tuple(argv), self._log("redis"), dict(self.options.env), RedisCheck(WORKER_HOST, port)
        )

    def _voicefleet(self, *args: str) -> tuple[str, ...]:
        # The supervisor's own interpreter: no dependence on PATH or on the console script being installed.
        return (sys.executable, "-m", "voicefleet.cli", *args)

    def _simulator_spec(self, port: int) -> ProcessSpec:
        argv = self._voicefleet("simulator", "--host", WORKER_HOST, "--port", str(port))
        if self.options.simulator_profile:
            argv += ("--profile", self.options.simulator_profile)
        health = HttpCheck(WORKER_HOST, port, "/healthz")
        return ProcessSpec("simulator", argv, self._log("simulator"), dict(self.options.env), health)

    def _worker_spec(self, name: str) -> ProcessSpec:
        port = self.worker_ports[name]
        env = dict(self.options.env)
        env.update(
            VOICEFLEET_REDIS_URL=self.redis_url,
            VOICEFLEET_TOKEN_SECRET=self.token_secret,
            VOICEFLEET_API_KEYS=self.api_keys,
            VOICEFLEET_WORKER_ID=name,
        )
        if self.upstream_url:
            env["VOICEFLEET_UPSTREAM_URL"] = self.upstream_url
        drain_s = float(env.get("VOICEFLEET_DRAIN_TIMEOUT_S", "60"))
        return ProcessSpec(
            name,
            (
                *(self.options.worker_command or self._voicefleet("worker")),
                "--host",
                WORKER_HOST,
                "--port",
                str(port),
            ),
            self._log(name),
            env,
            HttpCheck(WORKER_HOST, port, "/readyz"),
            stop_timeout_s=drain_s + 10.0,
        )

    def _render_edge(self) -> str:
        settings = edge.EdgeSettings(
            backends=tuple(edge.Backend(WORKER_HOST, self.worker_ports[n]) for n in self.worker_names),
            listen_host=self.options.host,
            listen_port=self.options.edge_port,
            tls=self.options.tls,
            expose_upstream_header=self.options.expose_upstream_header,
            fail_timeout_s=self.options.edge_fail_timeout_s,
        )
        template_path = self.options.edge_template or edge.default_template_path()
        if not template_path.exists():
            raise edge.EdgeError(f"edge template not found at {template_path}; set {edge.TEMPLATE_ENV}")
        return edge.render_edge_config(template_path.read_text(), settings, self.edge_prefix.resolve())

    def _edge_spec(self) -> ProcessSpec:
        conf = edge.write_prefix(self.edge_prefix, self._render_edge())
        edge.check_config(self.edge_prefix, conf)
        argv = tuple(edge.nginx_argv(self.edge_prefix, conf))
        health = HttpCheck(self.options.host, self.options.edge_port, "/healthz")
        # nginx: SIGTERM is a fast stop; SIGQUIT would wait for hour-long WebSockets.
        return ProcessSpec(
            "edge", argv, self._log("edge"), dict(self.options.env), health, stop_timeout_s=10.0
        )

    def _write_targets(self) -> None:
        addresses = [f"{WORKER_HOST}:{self.worker_ports[n]}" for n in self.worker_names]
        prometheus.write_targets(self.targets_path, addresses)

    def _prometheus_spec(self) -> ProcessSpec:
        config_path = self.state_dir / "prometheus" / "prometheus.yml"
        prometheus.write_config(
            config_path, prometheus.build_config(self.targets_path, self.options.prometheus_config)
        )
        binary = shutil.which("prometheus") or "prometheus"
        data = self.state_dir / "prometheus" / "data"
        argv = prometheus.prometheus_argv(
            binary, config_path, data, WORKER_HOST, self.options.prometheus_port
        )
        health = HttpCheck(WORKER_HOST, self.options.prometheus_port, "/-/ready")
        return ProcessSpec("prometheus", tuple(argv), self._log("prometheus"), dict(self.options.env), health)
