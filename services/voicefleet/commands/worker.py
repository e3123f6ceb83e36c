"""`voicefleet worker`: one worker process (uvicorn, uvloop when installed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from voicefleet.config import DEFAULT_UPSTREAM_URL, ConfigError, Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default: VOICEFLEET_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: VOICEFLEET_PORT or 8000)")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    return Settings.from_env(**overrides)


def run(args: argparse.Namespace) -> int:
    from voicefleet.observability.logging import configure_logging
    from voicefleet.worker.app import WorkerState, create_app
    from voicefleet.worker.server import WorkerServer, uvicorn_config

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"voicefleet worker: {exc}", file=sys.stderr)
        return 2
    if not settings.api_key_hashes:
        print("voicefleet worker: set VOICEFLEET_API_KEYS (comma-separated client keys)", file=sys.stderr)
        return 2
    if settings.upstream_url == DEFAULT_UPSTREAM_URL and not settings.openai_api_key:
        print(
            "voicefleet worker: set OPENAI_API_KEY, or VOICEFLEET_UPSTREAM_URL to a simulator "
            "(voicefleet simulator)",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level, settings.log_format)
    state = WorkerState(settings)
    server = WorkerServer(uvicorn_config(create_app(state), settings), state)
    server.run()  # uvicorn's runner uses the configured loop factory (uvloop when installed)
    return 0
