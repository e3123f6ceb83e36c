"""The skeleton both reference relays share: a websockets server on uvloop that opens one upstream socket per
client and pumps frames both ways until either side closes. Only the per-frame step differs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve

# One direction's loop: read from the first socket, write to the second, until it closes.
Pump = Callable[[Connection, Connection], Coroutine[Any, Any, None]]


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="ws URL of the Realtime endpoint, e.g. a simulator")
    return parser.parse_args()


def upstream_url(base: str, request_path: str) -> str:
    """The upstream URL with the client's query string (model=...) carried over."""
    query = urlsplit(request_path).query
    return f"{base}?{query}" if query else base


async def _relay(client: ServerConnection, upstream_base: str, pump: Pump) -> None:
    request = client.request
    path = request.path if request is not None else "/"
    auth = request.headers.get("Authorization", "") if request is not None else ""
    try:
        upstream = await connect(
            upstream_url(upstream_base, path),
            additional_headers={"Authorization": auth} if auth else None,
            compression=None,
            max_size=None,
            ping_interval=None,
        )
    except (OSError, websockets.InvalidHandshake):
        await client.close(1011, "upstream unavailable")
        return
    async with upstream:
        directions = [
            asyncio.create_task(pump(client, upstream)),
            asyncio.create_task(pump(upstream, client)),
        ]
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        for task in directions:
            task.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
    await client.close()


async def serve_relay(host: str, port: int, upstream_base: str, pump: Pump) -> None:
    async def handler(client: ServerConnection) -> None:
        await _relay(client, upstream_base, pump)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, host, port, compression=None, max_size=None, ping_interval=None):
        await stop


def main(description: str, pump: Pump) -> None:
    args = parse_args(description)
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve_relay(args.host, args.port, args.upstream, pump))


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed, like the worker, so the comparison is loop for loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)
