"""One client socket attached to a session: a bounded outbound queue, a writer, and a reader."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from voicefleet.observability.metrics import FleetMetrics
from voicefleet.realtime import actions as act

CLOSE = object()  # queue marker: close after everything queued before it was sent
RELAY_SAMPLE = 4  # observe relay latency on one frame in this many
BARRIER = object()  # queue marker: wait for a future (a checkpoint) before sending what follows
BARRIER_WAIT_S = 1.0  # a slow or absent store delays the client this long at most


class ClientChannel:
    def __init__(self, ws: WebSocket, queue_frames: int, metrics: FleetMetrics, log: Any) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_frames)
        self.metrics = metrics
        self.log = log
        self.closing = False
        self.closed_by_server = False
        self.client_close_code: int | None = None

    def send(self, frame: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait((frame, time.perf_counter()))
        except asyncio.QueueFull:
            # Too slow to keep up: close rather than grow memory. The session stays resumable; the events this
            # client missed are in the session's ring.
            self.log.warning("client_too_slow", queued=self.queue.qsize())
            self._force_close(act.WS_1013_TRY_AGAIN_LATER, "client too slow: outbound queue full")

    def barrier(self, done: asyncio.Future[None]) -> None:
        """Frames queued after this wait until `done` (bounded by BARRIER_WAIT_S)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((BARRIER, done))

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.closed_by_server = True
        try:
            self.queue.put_nowait((CLOSE, code, reason))
        except asyncio.QueueFull:
            self._force_close(code, reason)
            self.closed_by_server = True

    def _force_close(self, code: int, reason: str) -> None:
        self.closing = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait((CLOSE, code, reason))

    async def replay(self, frames: list[str]) -> None:
        """Missed events for a resuming client, sent before anything queued."""
        for frame in frames:
            await self.ws.send_text(frame)

    async def serve(self, on_text: Callable[[str], None], on_binary: Callable[[], None]) -> int | None:
        """Until the client leaves or the server closes it; the close code the client sent, if any."""
        reader = asyncio.create_task(self._read(on_text, on_binary))
        writer = asyncio.create_task(self._write())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        return self.client_close_code

    async def _read(self, on_text: Callable[[str], None], on_binary: Callable[[], None]) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.client_close_code = message.get("code")
                return
            text = message.get("text")
            if text is not None:
                on_text(text)
            else:
                on_binary()

    async def _write(self) -> None:
        queue, ws = self.queue, self.ws
        observe = self.metrics.relay_latency.labels("upstream_to_client").observe
        sent = 0
        while True:
            entry = await queue.get()
            while True:  # everything already queued goes out in this wake-up
                if entry[0] is BARRIER:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(entry[1]), BARRIER_WAIT_S)
                    if queue.empty():
                        break
                    entry = queue.get_nowait()
                    continue
                if entry[0] is CLOSE:
                    with contextlib.suppress(Exception):
                        await ws.close(entry[1], entry[2])
                    return
                try:
                    await ws.send_text(entry[0])
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return
                sent += 1
                if sent % RELAY_SAMPLE == 0:  # a sample keeps the histogram's lock off most frames
                    observe(time.perf_counter() - entry[1])
                if queue.empty():
                    break
                entry = queue.get_nowait()
