"""SessionRunner: the I/O around one RealtimeSession, for the session's whole life.

A session outlives its sockets. The runner owns the upstream socket (and replaces it when the core asks) and
lets client sockets attach and detach: a client that drops can come back within the grace period and receive
every event it missed. Readers feed the core and execute the actions it returns without awaiting, so one slow
socket never stalls the other direction: frames go into bounded queues that writer tasks drain. A client that
falls a whole queue behind is closed with 1013 rather than allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from starlette.websockets import WebSocket
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
    ReplaceUpstream,
    RunTool,
    SendClient,
    SendUpstream,
)
from voicefleet.realtime.continuity import SessionState
from voicefleet.realtime.events import dumps, error_event
from voicefleet.realtime.session import RealtimeSession
from voicefleet.worker.channel import CLOSE, RELAY_SAMPLE, ClientChannel
from voicefleet.worker.upstream import UpstreamConnector, UpstreamUnavailable

_WAKE_TIMER_ON = frozenset({"input_audio_buffer.speech_started", "response.done"})
ToolRunner = Callable[[str, str], Awaitable[str]]
CheckpointWriter = Callable[[RealtimeSession, str], Awaitable[None]]


class SessionRunner:
    def __init__(
        self,
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
        self.core = core
        self.connector = connector
        self.model = model
        self.metrics = metrics
        self.log = log
        self.run_tool = run_tool
        self.write_checkpoint = write_checkpoint
        self.client_queue_frames = client_queue_frames
        self.client: ClientChannel | None = None
        self.upstream_out: asyncio.Queue[Any] = asyncio.Queue(maxsize=upstream_queue_frames)
        self.usage_tokens = 0
        self._replace: ReplaceUpstream | None = None
        self._unsent_head: str | None = None
        self._client_counts: dict[str, int] = {}
        self._upstream_counts: dict[str, int] = {}
        self._replace_requested = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake_timer = asyncio.Event()
        self._checkpoint_lock = asyncio.Lock()
        self._reported_audio = (0, 0)

    # ---- action execution (synchronous: never awaits, so ordering is exactly the core's) -------------------
    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            kind = type(action)
            if kind is SendClient:
                if self.client is not None:
                    self.client.send(action.frame)  # type: ignore[union-attr]
            elif kind is SendUpstream:
                self._queue_upstream(action.frame)  # type: ignore[union-attr]
            elif kind is Measure:
                self._measure(action)  # type: ignore[arg-type]
            elif kind is CloseClient:
                assert isinstance(action, CloseClient)
                if self.client is not None:
                    self.client.close(action.code, action.reason)
            elif kind is CloseUpstream:
                self._replace_requested.set()  # the upstream loop sees the session closed and ends
            elif kind is ReplaceUpstream:
                assert isinstance(action, ReplaceUpstream)
                self._replace = action
                self._replace_requested.set()
            elif kind is RunTool:
                assert isinstance(action, RunTool)
                self._spawn(self._tool(action))
            elif kind is Checkpoint:
                assert isinstance(action, Checkpoint)
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                if action.barrier and self.client is not None:
                    self.client.barrier(done)
                self._spawn(self._checkpoint(action.reason, done))
            elif kind is Log:
                assert isinstance(action, Log)
                self.log.info(action.event, **action.fields)
        if self.core.state is SessionState.CLOSED:
            self._replace_requested.set()

    def _queue_upstream(self, frame: str) -> None:
        try:
            self.upstream_out.put_nowait((frame, time.perf_counter()))
        except asyncio.QueueFull:
            self.log.warning("upstream_too_slow", queued=self.upstream_out.qsize())
            self.core.end_reason = "upstream_too_slow"
            self.execute(self.core.close(act.WS_1013_TRY_AGAIN_LATER, "upstream too slow: queue full"))

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
        elif m.name == "upstream_reconnect":
            metrics.count_upstream_reconnect(m.labels.get("reason", "lost"))
        elif m.name == "usage" and isinstance(m.payload, dict):
            metrics.count_usage(m.payload)
            total = m.payload.get("total_tokens")
            self.usage_tokens += total if isinstance(total, int) else 0

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def closed(self) -> bool:
        return self.core.state is SessionState.CLOSED

    # ---- the session's life: upstream sockets, one after another ------------------------------------------
    async def run(self) -> None:
        timer = asyncio.create_task(self._timer())
        try:
            while not self.closed:
                await self._serve_one_upstream()
                request, self._replace = self._replace, None
                self._replace_requested.clear()
                if request is None or self.closed:
                    break
                self.log.info("upstream_replacing", reason=request.reason, delay_s=round(request.delay_s, 3))
                await asyncio.sleep(request.delay_s)
        finally:
            timer.cancel()
            if self.client is not None:
                self.client.close(act.WS_1011_INTERNAL_ERROR, "session ended")
            self._flush_metrics()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5.0)

    async def _serve_one_upstream(self) -> None:
        try:
            upstream, took = await self.connector.connect(self.model)
        except UpstreamUnavailable as exc:
            if not self.core.activated:
                self.core.end_reason = "upstream_unavailable"
                self._fail(str(exc))
            else:
                self.execute(self.core.upstream_lost(1006, "upstream unavailable", time.monotonic()))
            return
        self.metrics.upstream_connect.observe(took)
        self.execute(self.core.upstream_opened(time.monotonic()))
        reader = asyncio.create_task(self._read_upstream(upstream))
        writer = asyncio.create_task(self._write_upstream(upstream))
        replace = asyncio.create_task(self._replace_requested.wait())
        try:
            await asyncio.wait({reader, replace}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            replace.cancel()
            if not reader.done():
                # A planned end or rotation: what was queued for this upstream goes out before it closes.
                with contextlib.suppress(asyncio.QueueFull):  # full: the bounded wait below ends it
                    self.upstream_out.put_nowait(CLOSE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), timeout=2.0)
                reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            with contextlib.suppress(Exception):
                await upstream.close()
            self._requeue_unsent()

    def _requeue_unsent(self) -> None:
        """Frames that never reached a lost upstream go to the next one (or nowhere, if the session ended)."""
        unsent: list[str] = [self._unsent_head] if self._unsent_head is not None else []
        self._unsent_head = None
        while not self.upstream_out.empty():
            entry = self.upstream_out.get_nowait()
            if entry is not CLOSE:
                unsent.append(entry[0])
        if unsent and self.core.state is not SessionState.CLOSED:
            self.core.requeue(unsent)

    def _fail(self, message: str) -> None:
        """The upstream could not be opened for a new session: tell the client and end, as OpenAI would."""
        error = error_event("upstream_unavailable", message, error_type="server_error")
        self.execute(
            [
                self.core.emit_event(error),
                *self.core.close(act.WS_1011_INTERNAL_ERROR, "upstream unavailable"),
            ]
        )

    async def _read_upstream(self, upstream: ClientConnection) -> None:
        core, execute, counts = self.core, self.execute, self._upstream_counts
        try:
            async for frame in upstream:
                if isinstance(frame, bytes):
                    execute([Log("upstream_binary_frame_ignored", {"size": len(frame)})])
                    continue
                execute(core.upstream_text(frame, time.monotonic()))
                kind = core.last_upstream_type
                counts[kind] = counts.get(kind, 0) + 1
                if core.last_upstream_type in _WAKE_TIMER_ON:
                    self._wake_timer.set()  # a truncate may be scheduled, or a rotation may be due soon
        except websockets.ConnectionClosed:
            pass
        code = upstream.close_code or 1006
        reason = upstream.close_reason or "upstream connection lost"
        self.log.info("upstream_closed", code=code, reason=reason)
        self.execute(core.upstream_lost(code, reason, time.monotonic()))

    async def _write_upstream(self, upstream: ClientConnection) -> None:
        queue = self.upstream_out
        observe = self.metrics.relay_latency.labels("client_to_upstream").observe
        sent = 0
        while True:
            entry = await queue.get()
            while True:  # everything already queued goes out in this wake-up
                if entry is CLOSE:
                    return
                try:
                    await upstream.send(entry[0])
                except websockets.ConnectionClosed:
                    self._unsent_head = entry[
                        0
                    ]  # first in line for the next upstream; the reader reports the loss
                    return
                sent += 1
                if sent % RELAY_SAMPLE == 0:
                    observe(time.perf_counter() - entry[1])
                if queue.empty():
                    break
                entry = queue.get_nowait()

    # ---- client sockets: attach, serve, detach ------------------------------------------------------------
    async def attach(
        self, ws: WebSocket, *, last_seq: int | None = None, resumed_token: str | None = None
    ) -> int | None:
        """Serve one client socket until it goes away. `last_seq` is set for a client resuming on this worker:
        it first gets every event after it. Returns the close code the client sent, if any."""
        previous = self.client
        if previous is not None:
            previous.close(act.WS_1012_SERVICE_RESTART, "replaced by a newer connection")
        channel = ClientChannel(ws, self.client_queue_frames, self.metrics, self.log)
        self.client = channel  # live events from now on queue behind the replay
        if last_seq is not None:
            frames, gap = self.core.client_attached(time.monotonic(), last_seq)
            if resumed_token is not None:
                self.core.resume_token = resumed_token
            await channel.replay(frames)
            # The new token's version is written before the client gets it: if this worker dies right after, the
            # token must still open the session on another worker.
            self.execute([Checkpoint("resumed", barrier=True), *self.core.resume_notice(len(frames), gap)])
        code = await channel.serve(self._client_frame, self._client_binary)
        if self.client is channel:
            self.client = None
            if self.core.state is not SessionState.CLOSED:
                if code == act.WS_1000_NORMAL or channel.closed_by_server:
                    self.core.end_reason = self.core.end_reason or "client_closed"
                    self.execute(self.core.close(act.WS_1000_NORMAL, "client closed"))
                else:
                    self.execute(self.core.client_detached(time.monotonic()))
                    self.log.info("client_detached", code=code, grace_s=self.core.limits.resume_grace_s)
        return code

    def _client_frame(self, text: str) -> None:
        self.execute(self.core.client_text(text, time.monotonic()))
        self._count_client()

    def _client_binary(self) -> None:
        self.execute(self.core.client_binary(time.monotonic()))
        self._count_client()

    def _count_client(self) -> None:
        counts, kind = self._client_counts, self.core.last_client_type
        counts[kind] = counts.get(kind, 0) + 1

    # ---- time, tools and checkpoints ----------------------------------------------------------------------
    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            delay = max(0.0, min(self.core.next_deadline(now) - now, 1.0))
            self._wake_timer.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_timer.wait(), timeout=delay)
            self.execute(self.core.tick(time.monotonic()))
            self._flush_metrics()

    def _flush_metrics(self) -> None:
        """Per-frame counts are kept in plain dicts and added to the metrics once a tick: a Prometheus counter
        takes a lock per increment, which the relay would otherwise pay on every audio frame."""
        for direction, counts in (("client", self._client_counts), ("upstream", self._upstream_counts)):
            for kind, n in counts.items():
                self.metrics.count_event(direction, kind, n)
            counts.clear()
        self._flush_audio_metrics()

    def _flush_audio_metrics(self) -> None:
        sent_in, sent_out = self.core.input_audio_bytes, self.core.output_audio_bytes
        last_in, last_out = self._reported_audio
        if sent_in > last_in:
            self.metrics.count_audio("input", (sent_in - last_in) / 48000.0)
        if sent_out > last_out:
            self.metrics.count_audio("output", (sent_out - last_out) / 48000.0)
        self._reported_audio = (sent_in, sent_out)

    async def _tool(self, call: RunTool) -> None:
        if self.run_tool is None:
            output = dumps({"error": f"tool '{call.name}' is not available"})
        else:
            output = await self.run_tool(call.name, call.arguments)
        self.execute(self.core.tool_finished(call.call_id, output, time.monotonic()))

    async def _checkpoint(self, reason: str, done: asyncio.Future[None]) -> None:
        try:
            if self.write_checkpoint is not None:
                async with self._checkpoint_lock:  # one write at a time, in order
                    await self.write_checkpoint(self.core, reason)
        finally:
            if not done.done():
                done.set_result(None)
