"""SessionRunner: the I/O around one RealtimeSession — two sockets, two bounded queues, a timer, and tools.

Readers feed the core and execute the actions it returns without awaiting, so one slow socket never stalls the
other direction: frames go into bounded queues that writer tasks drain. A client that falls a whole queue behind
is closed with 1013 rather than allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection

from voicefleet.observability.metrics import FleetMetrics
from voicefleet.realtime import actions as act
from voicefleet.realtime.actions import (
    Action,
    Checkpoint,
    CloseClient,
    CloseUpstream,
    Log,
    Measure,
    RunTool,
    SendClient,
    SendUpstream,
)
from voicefleet.realtime.events import dumps, error_event
from voicefleet.realtime.session import RealtimeSession
from voicefleet.worker.upstream import UpstreamConnector, UpstreamUnavailable

_CLOSE = object()  # queue marker: close after everything queued before it was sent
ToolRunner = Callable[[str, str], Awaitable[str]]
CheckpointWriter = Callable[[RealtimeSession, str], Awaitable[None]]


class SessionRunner:
    def __init__(
        self,
        websocket: WebSocket,
        core: RealtimeSession,
        *,
        connector: UpstreamConnector,
        model: str,
        metrics: FleetMetrics,
        log: Any,
        client_queue_frames: int,
        upstream_queue_frames: int,
        run_tool: ToolRunner | None = None,
        write_checkpoint: CheckpointWriter | None = None,
    ) -> None:
        self.ws = websocket
        self.core = core
        self.connector = connector
        self.model = model
        self.metrics = metrics
        self.log = log
        self.run_tool = run_tool
        self.write_checkpoint = write_checkpoint
        self.client_out: asyncio.Queue[Any] = asyncio.Queue(maxsize=client_queue_frames)
        self.upstream_out: asyncio.Queue[Any] = asyncio.Queue(maxsize=upstream_queue_frames)
        self.upstream: ClientConnection | None = None
        self.closing = False
        self.usage_tokens = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake_timer = asyncio.Event()
        self._checkpoint_lock = asyncio.Lock()
        self._reported_audio = (0, 0)

    # ---- action execution (synchronous: never awaits, so ordering is exactly the core's) -------------------
    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            kind = type(action)
            if kind is SendClient:
                self._queue_client(action.frame)  # type: ignore[union-attr]
            elif kind is SendUpstream:
                self._queue_upstream(action.frame)  # type: ignore[union-attr]
            elif kind is Measure:
                self._measure(action)  # type: ignore[arg-type]
            elif kind is CloseClient:
                assert isinstance(action, CloseClient)
                self._queue_close(action.code, action.reason)
            elif kind is CloseUpstream:
                with contextlib.suppress(asyncio.QueueFull):
                    self.upstream_out.put_nowait(_CLOSE)
            elif kind is RunTool:
                assert isinstance(action, RunTool)
                self._spawn(self._tool(action))
            elif kind is Checkpoint:
                assert isinstance(action, Checkpoint)
                self._spawn(self._checkpoint(action.reason))
            elif kind is Log:
                assert isinstance(action, Log)
                self.log.info(action.event, **action.fields)

    def _queue_client(self, frame: str) -> None:
        if self.closing:
            return
        try:
            self.client_out.put_nowait((frame, time.perf_counter()))
        except asyncio.QueueFull:
            self.log.warning("client_too_slow", queued=self.client_out.qsize())
            self.core.end_reason = "client_too_slow"
            self._force_close(act.WS_1013_TRY_AGAIN_LATER, "client too slow: outbound queue full")

    def _queue_upstream(self, frame: str) -> None:
        try:
            self.upstream_out.put_nowait((frame, time.perf_counter()))
        except asyncio.QueueFull:
            self.log.warning("upstream_too_slow", queued=self.upstream_out.qsize())
            self.core.end_reason = "upstream_too_slow"
            self._force_close(act.WS_1013_TRY_AGAIN_LATER, "upstream too slow: queue full")

    def _queue_close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        try:
            self.client_out.put_nowait((_CLOSE, code, reason))
        except asyncio.QueueFull:
            self._force_close(code, reason)

    def _force_close(self, code: int, reason: str) -> None:
        self.closing = True
        while not self.client_out.empty():
            self.client_out.get_nowait()
        self.client_out.put_nowait((_CLOSE, code, reason))

    def _measure(self, m: Measure) -> None:
        metrics = self.metrics
        if m.name == "turn_latency":
            metrics.turn_latency.observe(m.value)
        elif m.name == "upstream_first_audio":
            metrics.upstream_first_audio.observe(m.value)
        elif m.name == "error":
            metrics.count_error(m.labels.get("code"))
        elif m.name == "interruption":
            metrics.interruptions.inc()
        elif m.name == "truncation":
            metrics.truncations.inc()
        elif m.name == "usage" and isinstance(m.payload, dict):
            metrics.count_usage(m.payload)
            total = m.payload.get("total_tokens")
            self.usage_tokens += total if isinstance(total, int) else 0

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the session --------------------------------------------------------------------------------------
    async def run(self) -> None:
        client_reader = asyncio.create_task(self._read_client())
        try:
            upstream, took = await self._connect()
        except UpstreamUnavailable as exc:
            self.core.end_reason = "upstream_unavailable"
            await self._fail(str(exc), act.WS_1011_INTERNAL_ERROR, "upstream unavailable")
            client_reader.cancel()
            return
        self.metrics.upstream_connect.observe(took)
        self.upstream = upstream
        self.execute(self.core.upstream_opened(time.monotonic()))
        workers = [
            client_reader,
            asyncio.create_task(self._read_upstream(upstream)),
            asyncio.create_task(self._write_client()),
            asyncio.create_task(self._write_upstream(upstream)),
            asyncio.create_task(self._timer()),
        ]
        try:
            await asyncio.wait(workers[:3], return_when=asyncio.FIRST_COMPLETED)
            if not workers[2].done():
                # The client writer flushes what is queued (and the close) unless the client is gone.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(workers[2]), timeout=2.0)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await upstream.close()
            self._flush_audio_metrics()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5.0)

    async def _connect(self) -> tuple[ClientConnection, float]:
        return await self.connector.connect(self.model)

    async def _fail(self, message: str, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(
                dumps(error_event("upstream_unavailable", message, error_type="server_error"))
            )
            await self.ws.close(code, reason)

    async def _read_client(self) -> None:
        core, execute, count = self.core, self.execute, self.metrics.count_event
        while True:
            message = await self.ws.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                core.end_reason = core.end_reason or "client_closed"
                return
            text = message.get("text")
            now = time.monotonic()
            if text is not None:
                execute(core.client_text(text, now))
            else:
                execute(core.client_binary(now))
            count("client", core.last_client_type)
            if self.closing:
                return

    async def _read_upstream(self, upstream: ClientConnection) -> None:
        core, execute, count = self.core, self.execute, self.metrics.count_event
        try:
            async for frame in upstream:
                if isinstance(frame, bytes):
                    execute([Log("upstream_binary_frame_ignored", {"size": len(frame)})])
                    continue
                execute(core.upstream_text(frame, time.monotonic()))
                count("upstream", core.last_upstream_type)
                if core.last_upstream_type == "input_audio_buffer.speech_started":
                    self._wake_timer.set()  # a barge-in may have scheduled a truncate
        except websockets.ConnectionClosed:
            pass
        code = upstream.close_code or 1006
        reason = upstream.close_reason or "upstream connection lost"
        self.log.info("upstream_closed", code=code, reason=reason)
        self.execute(core.upstream_lost(code, reason, time.monotonic()))

    async def _write_client(self) -> None:
        queue, ws, relay = self.client_out, self.ws, self.metrics.relay_latency
        observe = relay.labels("upstream_to_client").observe
        while True:
            entry = await queue.get()
            if entry[0] is _CLOSE:
                with contextlib.suppress(Exception):
                    await ws.close(entry[1], entry[2])
                return
            try:
                await ws.send_text(entry[0])
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.core.end_reason = self.core.end_reason or "client_closed"
                return
            observe(time.perf_counter() - entry[1])

    async def _write_upstream(self, upstream: ClientConnection) -> None:
        queue = self.upstream_out
        observe = self.metrics.relay_latency.labels("client_to_upstream").observe
        while True:
            entry = await queue.get()
            if entry is _CLOSE:
                with contextlib.suppress(Exception):
                    await upstream.close()
                return
            try:
                await upstream.send(entry[0])
            except websockets.ConnectionClosed:
                return  # the upstream reader reports the loss
            observe(time.perf_counter() - entry[1])

    async def _timer(self) -> None:
        while True:
            delay = max(0.0, min(self.core.next_deadline() - time.monotonic(), 1.0))
            self._wake_timer.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_timer.wait(), timeout=delay)
            self.execute(self.core.tick(time.monotonic()))
            self._flush_audio_metrics()

    def _flush_audio_metrics(self) -> None:
        sent_in, sent_out = self.core.input_audio_bytes, self.core.output_audio_bytes
        last_in, last_out = self._reported_audio
        if sent_in > last_in:
            self.metrics.count_audio("input", (sent_in - last_in) / 48000.0)
        if sent_out > last_out:
            self.metrics.count_audio("output", (sent_out - last_out) / 48000.0)
        self._reported_audio = (sent_in, sent_out)

    # ---- tools and checkpoints ----------------------------------------------------------------------------
    async def _tool(self, call: RunTool) -> None:
        if self.run_tool is None:
            output = dumps({"error": f"tool '{call.name}' is not available"})
        else:
            output = await self.run_tool(call.name, call.arguments)
        self.execute(self.core.tool_finished(call.call_id, output, time.monotonic()))

    async def _checkpoint(self, reason: str) -> None:
        if self.write_checkpoint is None:
            return
        async with self._checkpoint_lock:  # one write at a time, in order
            await self.write_checkpoint(self.core, reason)
