"""Starting sessions and resuming them: on this worker from its event ring, or on any worker from the store.

A resume token proves the right to a session. Each resume issues a new token (version + 1) and records the
version in the store, so an older token — one a client used already, or one copied from a log — stops working.
Taking a session from another worker goes through the store: ask a live owner to let go (it writes a last
checkpoint and releases its lease), then take the lease, whose fencing token refuses any later write of the old
owner, so a stale worker that wakes up cannot overwrite the session.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from voicefleet.realtime import actions as act
from voicefleet.realtime.continuity import SessionState
from voicefleet.realtime.conversation import ConversationLog
from voicefleet.realtime.events import dumps, error_event
from voicefleet.realtime.session import RealtimeSession, SessionIdentity
from voicefleet.realtime.tokens import ResumeToken, TokenError, sign, tenant_of, verify
from voicefleet.stores.base import SessionSnapshot, StaleOwner, StoreUnavailable
from voicefleet.worker.runner import SessionRunner

if TYPE_CHECKING:
    from voicefleet.worker.app import WorkerState

HANDOVER_WAIT_S = 3.0


class ResumeRefused(Exception):
    def __init__(self, code: str, message: str, close_code: int = act.WS_4000_INVALID_REQUEST) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


async def refuse(ws: WebSocket, code: str | None, message: str, close_code: int, reason: str) -> None:
    await ws.send_text(dumps(error_event(code, message)))
    await ws.close(close_code, reason)


class Session:
    """A runner plus what the worker keeps about it: tenant, token version, fence, and its checkpoint writer."""

    def __init__(
        self,
        state: WorkerState,
        core: RealtimeSession,
        *,
        tenant: str,
        model: str,
        version: int,
        fence: int | None,
        created_at: float,
    ) -> None:
        self.state = state
        self.tenant = tenant
        self.model = model
        self.version = version
        self.fence = fence
        self.created_at = created_at
        self.checkpoint_owed = False
        self.log = state.log.bind(session_id=core.session_id)
        settings = state.settings
        self.runner = SessionRunner(
            core,
            connector=state.connector,
            model=model,
            metrics=state.metrics,
            log=self.log,
            client_queue_frames=settings.client_queue_frames,
            upstream_queue_frames=settings.upstream_queue_frames,
            run_tool=self.run_tool,
            write_checkpoint=self.write_checkpoint,
        )

    @property
    def core(self) -> RealtimeSession:
        return self.runner.core

    def new_token(self) -> str:
        self.version += 1
        expires = time.time() + self.state.settings.session_ttl_s
        return sign(
            ResumeToken(self.core.session_id, self.tenant, self.version, expires), self.state.token_secret
        )

    async def run_tool(self, name: str, arguments: str) -> str:
        started = time.perf_counter()
        result = await self.state.tools.run(name, arguments)
        took = time.perf_counter() - started
        self.state.metrics.observe_tool(name, result.outcome, took)
        self.log.info("tool_call", tool=name, outcome=result.outcome, ms=round(took * 1000, 1))
        return result.output

    def snapshot(self, reason: str) -> SessionSnapshot:
        core = self.core
        return SessionSnapshot(
            session_id=core.session_id,
            tenant=self.tenant,
            model=self.model,
            config=core.effective_session,
            items=core.conversation.records(),
            token_version=self.version,
            owner=self.state.settings.worker_id,
            created_at=self.created_at,
            last_active_at=time.time(),
            ended=reason == "ended",
        )

    async def write_checkpoint(self, core: RealtimeSession, reason: str) -> None:
        try:
            await self.state.store.save(self.snapshot(reason), fence=self.fence)
            self.checkpoint_owed = False
        except StaleOwner:
            self.log.warning("stale_owner", reason=reason)
            self.runner.execute(core.stale_owner(time.monotonic()))
        except (StoreUnavailable, OSError) as exc:
            # Degraded, not down: the session goes on, and the write is retried when the store is back.
            self.checkpoint_owed = core.state is not SessionState.CLOSED or reason != "ended"
            self.state.metrics.count_redis_failure("checkpoint")
            self.log.warning("checkpoint_failed", reason=reason, error=type(exc).__name__)

    async def serve(self, ws: WebSocket, *, last_seq: int | None = None, token: str | None = None) -> None:
        """Run the session in the background (it outlives client sockets) and serve this socket on it."""
        self.state.register(self)
        await self.runner.attach(ws, last_seq=last_seq, resumed_token=token)

    async def run(self) -> None:
        state, core, metrics = self.state, self.core, self.state.metrics
        started = time.monotonic()
        metrics.sessions_started.inc()
        metrics.live_sessions.inc()
        self.log.info("session_started", model=self.model, resumed=core.identity.resumed)
        try:
            await self.runner.run()
        except Exception:
            # A bug must not end a session silently: say what happened, then clean up as for any ending.
            core.end_reason = core.end_reason or "error"
            self.log.exception("session_failed")
            raise
        finally:
            state.unregister(self)
            metrics.live_sessions.dec()
            reason = core.end_reason or "client_closed"
            metrics.count_session_end(reason)
            if reason not in ("handed_over", "stale_owner"):
                try:
                    await state.store.release(core.session_id, state.settings.worker_id)
                except StoreUnavailable:
                    metrics.count_redis_failure("lease")  # it expires by itself; a new owner fences it anyway
            self.log.info(
                "session_ended",
                reason=reason,
                turns=core.turns,
                interruptions=core.interruptions,
                tokens=self.runner.usage_tokens,
                duration_s=round(time.monotonic() - started, 3),
                events_sent=core.seq,
            )


async def start_session(state: WorkerState, ws: WebSocket, client_key: str, model: str) -> None:
    session_id = "vf_" + secrets.token_hex(12)
    try:
        fence: int | None = await state.store.acquire_lease(
            session_id, state.settings.worker_id, state.settings.session_ttl_s
        )
    except StoreUnavailable:
        fence = None  # degraded: the session runs without checkpoints until the store is back
        state.metrics.count_redis_failure("lease")
    session = Session(
        state,
        RealtimeSession(SessionIdentity(session_id, ""), state.policy, state.limits, time.monotonic()),
        tenant=tenant_of(client_key),
        model=model,
        version=0,
        fence=fence,
        created_at=time.time(),
    )
    session.core.resume_token = session.new_token()
    await session.serve(ws)


async def resume_session(state: WorkerState, ws: WebSocket, client_key: str, query: Any) -> None:
    started = time.monotonic()
    metrics = state.metrics
    try:
        session_id, token_text = str(query.get("session_id", "")), str(query.get("resume_token", ""))
        try:
            last_seq = int(query.get("last_seq", "0"))
        except ValueError as exc:
            raise ResumeRefused("invalid_value", "last_seq must be an integer.") from exc
        try:
            token = verify(token_text, state.token_secret, now=time.time(), tenant=tenant_of(client_key))
        except TokenError as exc:
            raise ResumeRefused(exc.code, str(exc)) from exc
        if token.session_id != session_id:
            raise ResumeRefused("invalid_resume_token", "The resume token is for another session.")
        local = state.sessions.get(session_id)
        if local is not None and local.core.state is not SessionState.CLOSED:
            if token.version != local.version:
                raise ResumeRefused("invalid_resume_token", "The resume token was superseded by a newer one.")
            metrics.count_resume("same_worker", "ok", time.monotonic() - started)
            local.log.info("resumed", kind="same_worker", last_seq=last_seq)
            await local.runner.attach(ws, last_seq=last_seq, resumed_token=local.new_token())
            return
        session = await _take_over(state, session_id, token.version, token.tenant, last_seq)
    except ResumeRefused as refused:
        kind = "same_worker" if session_id in state.sessions else "other_worker"
        metrics.count_resume(kind, "refused")
        await refuse(
            ws, refused.code, str(refused), refused.close_code, f"invalid_request_error.{refused.code}"
        )
        return
    metrics.count_resume("other_worker", "ok", time.monotonic() - started)
    session.log.info("resumed", kind="other_worker", last_seq=last_seq, items=len(session.core.conversation))
    await session.serve(ws)


async def _lease_released(state: WorkerState, session_id: str) -> None:
    """Wait (bounded) for the old owner's last checkpoint and lease release; the lease lives in the store, so
    this polls it."""
    deadline = time.monotonic() + HANDOVER_WAIT_S
    while time.monotonic() < deadline:
        if await state.store.lease_holder(session_id) is None:
            return
        await asyncio.sleep(0.02)


async def _take_over(
    state: WorkerState, session_id: str, version: int, tenant: str, last_seq: int
) -> Session:
    store, me = state.store, state.settings.worker_id
    try:
        holder = await store.lease_holder(session_id)
        owner_alive = holder is not None and holder[0] != me and await store.worker_alive(holder[0])
        # A live owner (the client was routed elsewhere, or it is draining) is asked to let go first.
        if owner_alive and holder is not None and await store.request_handover(holder[0], session_id, me):
            await _lease_released(state, session_id)
        snapshot = await store.load(session_id)
        if snapshot is None:
            raise ResumeRefused("session_not_found", "No such session (it ended or expired).")
        if snapshot.tenant != tenant:
            raise ResumeRefused("invalid_resume_token", "The resume token belongs to another client.")
        if snapshot.token_version != version:
            raise ResumeRefused("invalid_resume_token", "The resume token was superseded by a newer one.")
        fence = await store.acquire_lease(session_id, me, state.settings.session_ttl_s)
    except StoreUnavailable as exc:
        raise ResumeRefused(
            "store_unavailable", "Session state is unavailable; try again.", act.WS_1013_TRY_AGAIN_LATER
        ) from exc
    core = RealtimeSession(
        SessionIdentity(session_id, "", resumed=True),
        state.policy,
        state.limits,
        time.monotonic(),
        ConversationLog(snapshot.items),
        initial_seq=last_seq,
        effective_session=snapshot.config,
    )
    session = Session(
        state,
        core,
        tenant=tenant,
        model=snapshot.model,
        version=version,
        fence=fence,
        created_at=snapshot.created_at,
    )
    core.resume_token = session.new_token()
    # Record the new token version at once: the old token must not open the session a second time.
    await session.write_checkpoint(core, "resumed")
    return session
