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
from voicefleet.realtime.events import dumps, error_event
from voicefleet.realtime.limits import SessionLimits
from voicefleet.realtime.policy import PolicyDefaults, SessionPolicy, default_session
from voicefleet.realtime.session import RealtimeSession, SessionIdentity
from voicefleet.realtime.tokens import ResumeToken, sign, tenant_of
from voicefleet.stores.base import SessionSnapshot, SessionStore, StoreUnavailable
from voicefleet.stores.memory import InMemoryStore
from voicefleet.tools import ToolRegistry
from voicefleet.worker.auth import extract_credentials
from voicefleet.worker.runner import SessionRunner
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
        self.store: SessionStore = store or InMemoryStore()
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
        )
        self.sessions: dict[str, SessionRunner] = {}
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
        for runner in list(self.sessions.values()):
            runner.execute(runner.core.drain(now))


async def _refuse(ws: WebSocket, code: str | None, message: str, close_code: int, reason: str) -> None:
    await ws.send_text(dumps(error_event(code, message)))
    await ws.close(close_code, reason)


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
        await _refuse(
            ws,
            "beta_api_shape_disabled",
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
            act.WS_4000_INVALID_REQUEST,
            "invalid_request_error.beta_api_shape_disabled",
        )
        return
    if creds.key is None:
        metrics.count_auth_failure("missing_key")
        await _refuse(
            ws,
            None,
            "Missing bearer or basic authentication in header",
            act.WS_3000_UNAUTHORIZED,
            "invalid_request_error",
        )
        return
    if not settings.check_client_key(creds.key):
        metrics.count_auth_failure("invalid_key")
        await _refuse(
            ws,
            "invalid_api_key",
            "Incorrect API key provided.",
            act.WS_3000_UNAUTHORIZED,
            "invalid_request_error.invalid_api_key",
        )
        return
    if state.draining:
        await _refuse(
            ws,
            "server_draining",
            "This worker is restarting; reconnect.",
            act.WS_1012_SERVICE_RESTART,
            "draining",
        )
        return
    if len(state.sessions) >= settings.max_sessions:
        await _refuse(
            ws,
            "server_busy",
            "This worker is at capacity; try again.",
            act.WS_1013_TRY_AGAIN_LATER,
            "at capacity",
        )
        return
    intent = ws.query_params.get("intent")
    if intent not in (None, "", "realtime"):
        await _refuse(
            ws,
            "invalid_intent",
            f"Invalid intent {intent}",
            act.WS_4000_INVALID_REQUEST,
            "invalid_request_error.invalid_intent",
        )
        return
    await _serve_session(state, ws, creds.key, ws.query_params.get("model") or settings.model)


async def _serve_session(state: WorkerState, ws: WebSocket, client_key: str, model: str) -> None:
    settings, metrics = state.settings, state.metrics
    session_id = "vf_" + secrets.token_hex(12)
    tenant = tenant_of(client_key)
    token = sign(ResumeToken(session_id, tenant, 1, time.time() + settings.session_ttl_s), state.token_secret)
    core = RealtimeSession(SessionIdentity(session_id, token), state.policy, state.limits, time.monotonic())
    log = state.log.bind(session_id=session_id)
    created_at = time.time()

    async def run_tool(name: str, arguments: str) -> str:
        started = time.perf_counter()
        result = await state.tools.run(name, arguments)
        metrics.observe_tool(name, result.outcome, time.perf_counter() - started)
        log.info(
            "tool_call",
            tool=name,
            outcome=result.outcome,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result.output

    async def write_checkpoint(session: RealtimeSession, reason: str) -> None:
        snapshot = SessionSnapshot(
            session_id=session_id,
            tenant=tenant,
            model=model,
            config=session.effective_session,
            items=session.conversation.records(),
            owner=settings.worker_id,
            created_at=created_at,
            last_active_at=time.time(),
            ended=reason == "ended",
        )
        try:
            await state.store.save(snapshot)
        except (StoreUnavailable, OSError) as exc:
            metrics.count_redis_failure("checkpoint")
            log.warning("checkpoint_failed", reason=reason, error=type(exc).__name__)

    runner = SessionRunner(
        ws,
        core,
        connector=state.connector,
        model=model,
        metrics=metrics,
        log=log,
        client_queue_frames=settings.client_queue_frames,
        upstream_queue_frames=settings.upstream_queue_frames,
        run_tool=run_tool,
        write_checkpoint=write_checkpoint,
    )
    state.sessions[session_id] = runner
    state.no_sessions.clear()
    metrics.sessions_started.inc()
    metrics.live_sessions.inc()
    log.info("session_started", model=model)
    started = time.monotonic()
    try:
        await runner.run()
    finally:
        del state.sessions[session_id]
        if not state.sessions:
            state.no_sessions.set()
        metrics.live_sessions.dec()
        reason = core.end_reason or "client_closed"
        metrics.count_session_end(reason)
        log.info(
            "session_ended",
            reason=reason,
            turns=core.turns,
            interruptions=core.interruptions,
            tokens=runner.usage_tokens,
            duration_s=round(time.monotonic() - started, 3),
            events_sent=core.seq,
        )


async def healthz(request: Request) -> Response:
    state: WorkerState = request.app.state.worker
    return JSONResponse(
        {"status": "ok", "worker": state.settings.worker_id},
        headers={WORKER_HEADER: state.settings.worker_id},
    )


async def readyz(request: Request) -> Response:
    state: WorkerState = request.app.state.worker
    store_ok = await state.store.ping()
    ready = store_ok and not state.draining
    body: dict[str, Any] = {
        "ready": ready,
        "draining": state.draining,
        "store": "ok" if store_ok else "unavailable",
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
        yield
        await state.store.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/realtime", realtime_endpoint),
            WebSocketRoute("/v1/realtime/", realtime_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.worker = state
    return app
