"""A stand-in for ``voicefleet worker`` (same command line, same health routes) for supervisor tests that must
not depend on the real worker: it greets each WebSocket with its worker id and exits on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def main(host: str, port: int) -> None:
    worker_id = os.environ.get("VOICEFLEET_WORKER_ID", "?")

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"worker": worker_id, "pid": os.getpid()}))
        await ws.wait_closed()

    def routes(ws: ServerConnection, request: Request) -> Response | None:
        if request.path in ("/healthz", "/readyz"):
            return ws.respond(200, "ok\n")
        return None

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, host, port, process_request=routes):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
