"""A small raw WebSocket client for tests that need exact frames (bad input, resume sequences)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.support.processes import CLIENT_KEY


async def open_session(
    port: int, *, key: str | None = CLIENT_KEY, query: str = "model=gpt-realtime", **kw: Any
) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await connect(
        f"ws://127.0.0.1:{port}/v1/realtime?{query}", additional_headers=headers, open_timeout=10, **kw
    )


async def next_event(ws: ClientConnection, within_s: float = 10.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), within_s)
    event: dict[str, Any] = orjson.loads(raw)
    return event


async def wait_for(
    ws: ClientConnection, event_type: str, within_s: float = 15.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first event of `event_type`, and every event received before it."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        event = await next_event(ws, max(0.01, deadline - loop.time()))
        if event.get("type") == event_type:
            return event, seen
        seen.append(event)


async def send(ws: ClientConnection, event_type: str, **fields: Any) -> None:
    await ws.send(orjson.dumps({"type": event_type, **fields}).decode())


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


async def stream_audio(ws: ClientConnection, pcm: bytes, *, chunk_ms: int = 20, pace: float = 0.0) -> None:
    """Append audio in chunk_ms pieces; `pace` = fraction of real time to sleep per chunk (0 = as fast as possible)."""
    step = 48 * chunk_ms
    for start in range(0, len(pcm), step):
        await send(ws, "input_audio_buffer.append", audio=b64(pcm[start : start + step]))
        if pace:
            await asyncio.sleep(chunk_ms / 1000 * pace)
