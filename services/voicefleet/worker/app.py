"""The worker's Starlette app: the realtime route, health, readiness and metrics.

Clients connect exactly as they would to OpenAI. Refusals follow OpenAI's own shape: the socket is upgraded, an
`error` event says why, and a close code and reason follow (3000 for credentials, 4000 for invalid requests).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from voicefleet.config import Settings
from voicefleet.observability.logging import get_logger
from voicefleet.observability.metrics import FleetMetrics
from voicefleet.realtime import actions as act
from voicefleet.realtime.limits import SessionLimits
from voicefleet.realtime.policy import PolicyDefaults, SessionPolicy, default_session
from voicefleet.stores.base import SessionStore, StoreUnavailable
from voicefleet.stores.memory import InMemoryStore
from voicefleet.stores.redis import RedisStore
from voicefleet.tools import ToolRegistry
from voicefleet.worker import demo
from voicefleet.worker.auth import extract_credentials
from voicefleet.worker.sessions import Session, refuse, resume_session, start_session
from voicefleet.worker.upstream import UpstreamConnector

WORKER_HEADER = "x-voicefleet-worker"


class WorkerState:
    """Everything one worker process shares between its sessions. Built once at start."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: FleetMetrics | None = None,
        store: SessionStore | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or FleetMetrics()
        self.store: SessionStore = store or (
            RedisStore(settings.redis_url, ttl_s=settings.session_ttl_s)
            if settings.redis_url
            else InMemoryStore()
        )
        self.tools = tools or ToolRegistry.from_module(settings.tools, settings.tool_timeout_s)
        self.connector = UpstreamConnector(settings)
        # Without a shared secret, tokens are only good on this process: fine for the single-worker default.
        self.token_secret = settings.token_secret or secrets.token_bytes(32)
        self.policy = SessionPolicy(
            session=default_session(
                PolicyDefaults(
                    instructions=settings.instructions,
                    voice=settings.voice,
                    vad_threshold=settings.vad_threshold,
                    vad_prefix_padding_ms=settings.vad_prefix_padding_ms,
                    vad_silence_duration_ms=settings.vad_silence_duration_ms,
                    input_transcription_model=settings.input_transcription_model,
                ),
                self.tools.specs(),
            ),
            locked_fields=settings.locked_fields,
            expose_server_policy=settings.expose_server_policy,
        )
        self.limits = SessionLimits(
            max_messages_per_s=settings.max_messages_per_s,
            max_session_s=settings.max_session_s,
            max_idle_s=settings.max_idle_s,
            max_audio_buffer_bytes=settings.max_audio_buffer_bytes,
            ring_events=settings.resume_ring_events,
            ring_bytes=settings.resume_ring_bytes,
            resume_grace_s=settings.resume_grace_s,
            upstream_max_session_s=settings.upstream_max_session_s,
        )
        self.sessions: dict[str, Session] = {}
        self._session_tasks: set[asyncio.Task[None]] = set()
        self.store_ok = True
        self.draining = False
        self._drain_started = False
        self.no_sessions = asyncio.Event()
        self.no_sessions.set()
        self.log = get_logger(worker=settings.worker_id)

    def begin_drain(self) -> None:
        """Stop taking sessions and hand each live one over at its next turn boundary."""
        if self._drain_started:
            return
        self._drain_started = True
        self.draining = True
        self.metrics.set_draining(True)
        now = time.monotonic()
        for session in list(self.sessions.values()):
            session.runner.execute(session.core.drain(now))

    def register(self, session: Session) -> None:
        """A session's life is a task of the worker's, not of the client socket that opened it."""
        self.sessions[session.core.session_id] = session
        self.no_sessions.clear()
        task = asyncio.create_task(session.run())
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    def unregister(self, session: Session) -> None:
        if self.sessions.get(session.core.session_id) is session:
            del self.sessions[session.core.session_id]
        if not self.sessions:
            self.no_sessions.set()
        self.count_detached()

    def count_detached(self) -> None:
        detached = sum(1 for s in self.sessions.values() if s.core.detached_at is not None)
        self.metrics.resume_buffered_sessions.set(detached)

    async def keep_store(self) -> None:
        """Heartbeat (other workers tell a live owner from a dead one by it), store health, owed checkpoints."""
        while True:
            try:
                await self.store.heartbeat(self.settings.worker_id, 3.0)
                ok = True
            except StoreUnavailable:
                ok = False
                self.metrics.count_redis_failure("heartbeat")
            if ok and not self.store_ok:
                # The store may have restarted empty: write every live session again, not only failed writes.
                self.log.info("store_back", sessions=len(self.sessions))
                for session in self.sessions.values():
                    session.checkpoint_owed = True
            self.store_ok = ok
            self.metrics.set_redis_up(ok)
            if ok:
                for session in list(self.sessions.values()):
                    if session.checkpoint_owed:
                        await session.write_checkpoint(session.core, "catch_up")
            self.count_detached()
            await asyncio.sleep(1.0)

    async def serve_handovers(self) -> None:
        """Let go of a session another worker has taken (its client reconnected there)."""
        async for request in self.store.handover_requests(self.settings.worker_id):
            session_id = str(request.get("session_id"))
            session = self.sessions.get(session_id)
            if session is not None:
                session.log.info("handover", to=request.get("new_owner"))
                session.runner.execute(session.core.handover(time.monotonic()))
                continue
            # Not served here: a lease naming this worker is left from a previous run of it (same id after a
            # restart). Release it at once, so the new owner does not wait out the handover bound.
            try:
                await self.store.release(session_id, self.settings.worker_id)
            except StoreUnavailable:
                self.metrics.count_redis_failure("release")


async def realtime_endpoint(ws: WebSocket) -> None:
    state: WorkerState = ws.app.state.worker
    settings, metrics = state.settings, state.metrics
    creds = extract_credentials(ws.headers, ws.scope.get("subprotocols") or [])
    if state.draining and "websocket.http.response" in ws.scope.get("extensions", {}):
        # Refuse the upgrade itself, so an edge in front retries the next worker instead of failing the client.
        await ws.send_denial_response(
            JSONResponse(
                {"error": "worker draining"}, status_code=503, headers={WORKER_HEADER: settings.worker_id}
            )
        )
        return
    await ws.accept(
        subprotocol=creds.subprotocol, headers=[(WORKER_HEADER.encode(), settings.worker_id.encode())]
    )
    if creds.beta:
        metrics.count_auth_failure("beta_shape")
        await refuse(
            ws,
            "beta_api_shape_disabled",
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
            act.WS_4000_INVALID_REQUEST,
            "invalid_request_error.beta_api_shape_disabled",
        )
        return
    if creds.key is None:
        metrics.count_auth_failure("missing_key")
        await refuse(
            ws,
            None,
            "Missing bearer or basic authentication in header",
            act.WS_3000_UNAUTHORIZED,
            "invalid_request_error",
        )
        return
    if not settings.check_client_key(creds.key):
        metrics.count_auth_failure("invalid_key")
        await refuse(
            ws,
            "invalid_api_key",
            "Incorrect API key provided.",
            act.WS_3000_UNAUTHORIZED,
            "invalid_request_error.invalid_api_key",
        )
        return
    if state.draining:
        await refuse(
            ws,
            "server_draining",
            "This worker is restarting; reconnect.",
            act.WS_1012_SERVICE_RESTART,
            "draining",
        )
        return
    if len(state.sessions) >= settings.max_sessions:
        await refuse(
            ws,
            "server_busy",
            "This worker is at capacity; try again.",
            act.WS_1013_TRY_AGAIN_LATER,
            "at capacity",
        )
        return
    intent = ws.query_params.get("intent")
    if intent not in (None, "", "realtime"):
        await refuse(
            ws,
            "invalid_intent",
            f"Invalid intent {intent}",
            act.WS_4000_INVALID_REQUEST,
            "invalid_request_error.invalid_intent",
        )
        return
    if "session_id" in ws.query_params or "resume_token" in ws.query_params:
        await resume_session(state, ws, creds.key, ws.query_params)
        return
    await start_session(state, ws, creds.key, ws.query_params.get("model") or settings.model)


async def healthz(request: Request) -> Response:
    state: WorkerState = request.app.state.worker
    return JSONResponse(
        {"status": "ok", "worker": state.settings.worker_id},
        headers={WORKER_HEADER: state.settings.worker_id},
    )


async def readyz(request: Request) -> Response:
    state: WorkerState = request.app.state.worker
    store_ok = await state.store.ping()
    # A worker whose store is down still serves its sessions (without checkpoints): it stays ready, and says so.
    ready = not state.draining
    body: dict[str, Any] = {
        "ready": ready,
        "draining": state.draining,
        "store": "ok" if store_ok else "degraded",
        "live_sessions": len(state.sessions),
        "worker": state.settings.worker_id,
    }
    return JSONResponse(
        body, status_code=200 if ready else 503, headers={WORKER_HEADER: state.settings.worker_id}
    )


async def metrics_endpoint(request: Request) -> Response:
    state: WorkerState = request.app.state.worker
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


def create_app(state: WorkerState) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.log.info(
            "worker_started", upstream=state.settings.upstream_url, tools=sorted(state.tools.tools)
        )
        background = [asyncio.create_task(state.keep_store()), asyncio.create_task(state.serve_handovers())]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await state.store.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/realtime", realtime_endpoint),
            WebSocketRoute("/v1/realtime/", realtime_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            demo.route,
        ],
        lifespan=lifespan,
    )
    app.state.worker = state
    return app
