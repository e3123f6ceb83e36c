"""The floor: frames are relayed as bytes, never decoded, parsed or re-encoded.

Realtime frames are all text, so what is read as bytes is written back as a text frame.
Run: python -m voicefleet.bench.baselines.raw_relay --port 9100 --upstream ws://127.0.0.1:8001/v1/realtime
"""

from __future__ import annotations

import contextlib

import websockets
from websockets.asyncio.connection import Connection

from voicefleet.bench.baselines.relay import main


async def pump_raw(source: Connection, target: Connection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await target.send(await source.recv(decode=False), text=True)


if __name__ == "__main__":
    main(__doc__ or "", pump_raw)
