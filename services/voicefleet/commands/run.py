"""`voicefleet run`: the embedded default — one worker, the in-process simulator, the in-memory store.

With OPENAI_API_KEY set (and no VOICEFLEET_UPSTREAM_URL), the same command relays to OpenAI instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import sys
from collections.abc import Generator

import uvicorn

from voicefleet.config import DEFAULT_UPSTREAM_URL, ConfigError, Settings, hash_client_key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to bind (default 8000)")
    parser.add_argument(
        "--profile", default="none", help="simulator latency profile: us-east|eu-west|ap-tokyo|none"
    )
    parser.add_argument("--scenario", default=None, help="simulator scenario file (JSON or YAML)")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietServer(uvicorn.Server):
    """The in-process simulator: the worker's server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def run(args: argparse.Namespace) -> int:
    from voicefleet.observability.logging import configure_logging
    from voicefleet.worker.app import WorkerState, create_app
    from voicefleet.worker.server import WorkerServer, uvicorn_config

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"voicefleet run: {exc}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    settings = settings.with_overrides(host=host, port=port, worker_id=f"embedded:{port}")
    dev_key = None
    if not settings.api_key_hashes:
        dev_key = "vf-dev-" + secrets.token_urlsafe(18)
        settings = settings.with_overrides(api_key_hashes=(hash_client_key(dev_key),))
    use_simulator = settings.upstream_url == DEFAULT_UPSTREAM_URL and not settings.openai_api_key
    sim_server: uvicorn.Server | None = None
    if use_simulator:
        from voicefleet.simulator.app import create_app as create_simulator_app
        from voicefleet.simulator.config import SimulatorConfig
        from voicefleet.simulator.scenario import Scenario, load_scenario

        scenario = load_scenario(args.scenario) if args.scenario else Scenario()
        sim_port = _free_port("127.0.0.1")
        sim_app = create_simulator_app(SimulatorConfig(profile=args.profile, scenario=scenario))
        sim_server = _QuietServer(uvicorn_config(sim_app, settings, host="127.0.0.1", port=sim_port))
        settings = settings.with_overrides(upstream_url=f"ws://127.0.0.1:{sim_port}/v1/realtime")
    configure_logging(settings.log_level, settings.log_format)
    state = WorkerState(settings)
    server = WorkerServer(uvicorn_config(create_app(state), settings), state)

    upstream = "the built-in simulator (offline)" if use_simulator else settings.upstream_url
    print(f"voicefleet: worker on http://{host}:{port}  (upstream: {upstream})", flush=True)
    print(f"  realtime:  ws://{host}:{port}/v1/realtime?model={settings.model}", flush=True)
    if dev_key:
        print(f"  client key (development, this run only): {dev_key}", flush=True)
        print(f"  talk from a browser: http://{host}:{port}/?key={dev_key}", flush=True)
    else:
        print(f"  talk from a browser: http://{host}:{port}/ (enter a client key)", flush=True)
    print("  talk to it with the official SDK:", flush=True)
    print(
        f'    AsyncOpenAI(api_key="<client key>", base_url="http://{host}:{port}/v1", '
        f'websocket_base_url="ws://{host}:{port}/v1").realtime.connect(model="{settings.model}")',
        flush=True,
    )
    print(
        f"  health: http://{host}:{port}/healthz   metrics: http://{host}:{port}/metrics   Ctrl-C stops",
        flush=True,
    )

    async def main() -> None:
        sim_task = asyncio.create_task(sim_server.serve()) if sim_server is not None else None
        try:
            await server.serve()
        finally:
            if sim_server is not None and sim_task is not None:
                sim_server.should_exit = True
                await sim_task

    config = uvicorn_config(create_app(state), settings)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:  # uvloop when installed
        runner.run(main())
    return 0
