"""``voicefleet fleet``: run the local fleet in the foreground until Ctrl-C or SIGTERM.

Control while it runs: SIGHUP (or ``voicefleet fleet --rolling-restart --edge-port P`` from another shell,
which sends it) drains and replaces each worker in turn. The fleet's pid is in ``<state dir>/fleet.pid``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from voicefleet.fleet import edge
from voicefleet.fleet.procs import StartupError
from voicefleet.fleet.supervisor import Fleet, FleetOptions

DEPLOY_PROMETHEUS = Path("deploy") / "prometheus" / "prometheus.yml"


def deploy_prometheus_config() -> Path | None:
    """The deploy config from the repository this package runs from, else from the current directory."""
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (root / DEPLOY_PROMETHEUS).exists():
            return root / DEPLOY_PROMETHEUS
    return None


def default_state_dir(edge_port: int) -> Path:
    """Keyed by edge port, so ``--rolling-restart --edge-port P`` finds the fleet that serves P."""
    return Path(tempfile.gettempdir()) / f"voicefleet-fleet-{os.getuid()}-{edge_port}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    parser.add_argument("--edge-port", type=int, default=8080, help="port of the nginx edge (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address the edge listens on (workers: loopback)")
    parser.add_argument(
        "--state-dir", type=Path, help="logs, nginx prefix, Prometheus targets (default: temp)"
    )
    parser.add_argument("--profile", default="", help="simulator latency profile (us-east, eu-west, ...)")
    parser.add_argument(
        "--with-prometheus", action="store_true", help="also run Prometheus scraping every worker"
    )
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument(
        "--tls-cert", type=Path, help="certificate (PEM) for an extra TLS listener on the edge"
    )
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) for --tls-cert")
    parser.add_argument("--tls-port", type=int, default=8443)
    parser.add_argument(
        "--worker-command",
        default="",
        help="command that runs one worker given --host/--port (default: voicefleet worker of this Python)",
    )
    parser.add_argument(
        "--rolling-restart",
        action="store_true",
        help="do not start a fleet: tell the one on --edge-port to drain and restart its workers one by one",
    )


def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir(args.edge_port)
    pid_file = state_dir / "fleet.pid"
    if args.rolling_restart:
        return _signal_running(pid_file)
    if args.workers < 1:
        print("voicefleet fleet: --workers must be at least 1", file=sys.stderr)
        return 2
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("voicefleet fleet: --tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        tls = edge.TlsSettings(args.tls_port, args.tls_cert.resolve(), args.tls_key.resolve())
    options = FleetOptions(
        state_dir=state_dir.resolve(),
        workers=args.workers,
        host=args.host,
        edge_port=args.edge_port,
        simulator_profile=args.profile,
        with_prometheus=args.with_prometheus,
        prometheus_port=args.prometheus_port,
        prometheus_config=deploy_prometheus_config(),
        tls=tls,
        worker_command=tuple(shlex.split(args.worker_command)),
    )
    fleet = Fleet(options)
    stop = threading.Event()
    rolling = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        # A start in progress polls this flag, so Ctrl-C during boot also ends promptly.
        fleet._stopping.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        rolling.set()

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        fleet.start()
    except (edge.EdgeError, StartupError) as exc:
        print(f"voicefleet fleet: {exc}", file=sys.stderr)
        return 1
    if stop.is_set():
        fleet.stop()
        return 0
    pid_file.write_text(f"{os.getpid()}\n")
    _print_banner(fleet)
    try:
        fleet.run(stop, rolling)
    finally:
        fleet.say("stopping")
        fleet.stop()
        pid_file.unlink(missing_ok=True)
    return 0


def _signal_running(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"voicefleet fleet: no running fleet found via {pid_file} ({exc})", file=sys.stderr)
        return 1
    print(f"rolling restart requested (fleet pid {pid}); its log shows each worker drained and back")
    return 0


def _print_banner(fleet: Fleet) -> None:
    workers = ", ".join(f"{n}=127.0.0.1:{p}" for n, p in fleet.worker_ports.items())
    upstream = fleet.upstream_url or "OpenAI (OPENAI_API_KEY)"
    lines = [
        f"edge      {fleet.realtime_url}",
        f"workers   {workers}",
        f"upstream  {upstream}",
        f"redis     {fleet.redis_url}",
        f"state     {fleet.state_dir} (logs/, edge/, prometheus/targets.json)",
    ]
    if fleet.options.with_prometheus:
        lines.append(f"prometheus http://127.0.0.1:{fleet.options.prometheus_port}")
    if fleet.generated_api_key:
        lines.append(f"api key   {fleet.api_key}   (generated; set VOICEFLEET_API_KEYS to choose your own)")
    lines += [
        "",
        "talk to it:",
        f"  voicefleet talk --url {fleet.realtime_url} --wav hello.wav",
        f"  openai SDK: AsyncOpenAI(api_key=KEY, base_url='{fleet.edge_url}/v1',",
        f"              websocket_base_url='ws://{fleet.options.host}:{fleet.options.edge_port}/v1')",
        "rolling restart: kill -HUP "
        f"{os.getpid()}  (or: voicefleet fleet --rolling-restart --edge-port {fleet.options.edge_port})",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
