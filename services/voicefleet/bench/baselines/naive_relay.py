"""What a relay that looks at every frame costs with the standard library: json.loads and json.dumps of each
frame, both ways (no other work).

Run: python -m voicefleet.bench.baselines.naive_relay --port 9101 --upstream ws://127.0.0.1:8001/v1/realtime
"""

from __future__ import annotations

import contextlib
import json

import websockets
from websockets.asyncio.connection import Connection

from voicefleet.bench.baselines.relay import main


async def pump_json(source: Connection, target: Connection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for frame in source:
            await target.send(json.dumps(json.loads(frame)))


if __name__ == "__main__":
    main(__doc__ or "", pump_json)
