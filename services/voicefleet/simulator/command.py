"""`voicefleet simulator`: serve the Realtime simulator on a port (uvicorn, websockets, uvloop when installed)."""

from __future__ import annotations

import argparse
import importlib.util
import socket
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from voicefleet.simulator.app import create_app
from voicefleet.simulator.config import AudioPacing, Faults, SimulatorConfig
from voicefleet.simulator.latency import PROFILES
from voicefleet.simulator.scenario import Scenario, load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to bind (default 8001)")
    parser.add_argument(
        "--profile", choices=list(PROFILES), default="none", help="time-to-first-audio profile"
    )
    parser.add_argument("--scenario", type=Path, default=None, help="scripted turns (JSON or YAML)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the latency sampler")
    parser.add_argument(
        "--close-after", type=float, default=None, metavar="S", help="close each session after S s"
    )
    parser.add_argument(
        "--expire-after",
        type=float,
        default=None,
        metavar="S",
        help="send session_expired and close after S s",
    )
    parser.add_argument(
        "--event-log", type=Path, default=None, metavar="PATH", help="JSON lines of client events"
    )
    parser.add_argument("--api-key", default=None, help="require this key from clients (default: accept any)")
    parser.add_argument("--speed-factor", type=float, default=4.0, help="reply audio speed vs real time")
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per output delta event")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    return SimulatorConfig(
        profile=args.profile,
        scenario=scenario,
        seed=args.seed,
        api_key=args.api_key,
        faults=Faults(close_after_s=args.close_after, expire_after_s=args.expire_after),
        pacing=AudioPacing(chunk_ms=args.chunk_ms, speed_factor=args.speed_factor),
        event_log=args.event_log,
    )


def uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets",
        ws_per_message_deflate=False,
        loop=loop,
        log_level="warning",
        lifespan="on",
    )


class _AnnouncingServer(uvicorn.Server):
    """Prints the URL once the socket is listening, so scripts can wait for that line."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.config.host, self.config.port
            print(f"voicefleet simulator: ws://{host}:{port}/v1/realtime?model=gpt-realtime", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"voicefleet simulator: {exc}", flush=True)
        return 2
    server = _AnnouncingServer(uvicorn_config(create_app(config), args.host, args.port))
    server.run()
    return 0 if server.started else 1
