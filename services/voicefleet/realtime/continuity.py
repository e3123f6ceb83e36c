"""Keeping a session alive across broken sockets: upstream loss and rotation, client detach and re-attach,
drain, handover. The decisions are here; the runner only opens and closes sockets.

OpenAI has no server-side resume, so a new upstream socket is a new upstream session: it is rebuilt from the
effective session config and the conversation as text, with a note to the model not to greet again. The client
keeps one session throughout: it sees `fleet.upstream` notices for losses, nothing at all for planned rotations.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voicefleet.realtime import actions as act
from voicefleet.realtime.actions import Action, Measure, ReplaceUpstream, SendClient, SendUpstream
from voicefleet.realtime.events import INTERNAL_EVENT_PREFIX, dumps, error_event, new_event_id
from voicefleet.realtime.retry import UpstreamFailure, backoff_delay, is_retryable
from voicefleet.realtime.ring import EventRing

if TYPE_CHECKING:
    from voicefleet.realtime.conversation import ConversationLog
    from voicefleet.realtime.limits import SessionLimits
    from voicefleet.realtime.policy import SessionPolicy
    from voicefleet.realtime.tooling import ToolCoordinator

RESUME_NOTE = (
    "This conversation is continuing after a brief reconnection. Do not greet the user again and do not repeat "
    "what you already said; carry on from where the conversation left off."
)
# Session fields a `session.update` may carry; the rest of what the server reports (id, object, expires_at, model)
# is read-only and would make OpenAI reject the whole update.
UPDATABLE_FIELDS = (
    "type", "output_modalities", "instructions", "audio", "tools", "tool_choice", "max_output_tokens",
    "truncation", "tracing", "prompt", "include", "parallel_tool_calls", "reasoning",
)  # fmt: skip


class SessionState(enum.Enum):
    CONNECTING = "connecting"  # waiting for the upstream's session.created
    CONFIGURING = "configuring"  # policy sent upstream, waiting for its session.updated
    ACTIVE = "active"
    RECONNECTING = "reconnecting"  # the upstream is being replaced; client events are held
    CLOSED = "closed"


def updatable_session(session: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in session.items() if k in UPDATABLE_FIELDS and v is not None}


class ContinuityHandlers:
    # Provided by RealtimeSession.
    state: SessionState
    policy: SessionPolicy
    limits: SessionLimits
    conversation: ConversationLog
    tools: ToolCoordinator
    ring: EventRing
    seq: int
    effective_session: dict[str, Any]
    active_response: str | None
    draining: bool
    end_reason: str
    resume_token: str
    last_client_activity: float
    last_upstream_error: str | None
    user_speaking: bool
    _queued_upstream: list[str]

    # Provided by the session and its upstream handlers (declared here so the type checker knows them).
    emit: Callable[[str], SendClient]
    emit_event: Callable[[dict[str, Any]], SendClient]
    close: Callable[..., list[Action]]

    @property
    def session_id(self) -> str:
        raise NotImplementedError

    def _init_continuity(self, now: float, resumed: bool) -> None:
        self.restoring = resumed  # the next upstream session must be rebuilt from the record
        self.notify_restore = False
        self.activated = False  # the client has had its session.created
        self.upstream_attempts = 0
        self.upstream_opened_at = now
        self.last_response_done_at = now
        self.detached_at: float | None = None
        self.replayed = 0
        self._dropped_notice_sent = False

    # ---- upstream loss and rotation -------------------------------------------------------------------------
    def upstream_opened(self, now: float) -> list[Action]:
        self.upstream_opened_at = now
        if self.state is SessionState.RECONNECTING:
            self.state = SessionState.CONNECTING
        return []

    def upstream_lost(self, code: int, reason: str, now: float) -> list[Action]:
        """The upstream socket closed. Retryable losses rebuild the session on a new upstream; OpenAI's fatal
        closes (3000 auth, 4000 invalid request) reach the client with the same code and reason."""
        if self.state is SessionState.CLOSED:
            return []
        failure = UpstreamFailure(close_code=code, error_code=self.last_upstream_error)
        self.last_upstream_error = None
        if is_retryable(failure) and self.upstream_attempts < self.limits.max_upstream_reconnects:
            return self._reconnect("expired" if failure.error_code == "session_expired" else "lost", now)
        self.end_reason = "upstream_closed"
        if code in (act.WS_3000_UNAUTHORIZED, act.WS_4000_INVALID_REQUEST):
            return self.close(code, reason)
        out: list[Action] = [
            self.emit_event(
                error_event(
                    "upstream_closed", "The realtime service closed the session.", error_type="server_error"
                )
            )
        ]
        return out + self.close(act.WS_1011_INTERNAL_ERROR, "upstream connection lost")

    def _reconnect(self, reason: str, now: float) -> list[Action]:
        out: list[Action] = []
        if self.active_response is not None:
            # The response died with its upstream session; the client must not wait for a response.done forever.
            failed = {
                "type": "response.done",
                "event_id": new_event_id(),
                "response": {
                    "id": self.active_response,
                    "object": "realtime.response",
                    "status": "failed",
                    "status_details": {
                        "type": "failed",
                        "error": {"type": "server_error", "code": "upstream_reconnected"},
                    },
                    "output": [],
                    "usage": None,
                },
            }
            out.append(self.emit_event(failed))
            self.active_response = None
        first_attempt = self.state is not SessionState.RECONNECTING
        if first_attempt:
            self._dropped_notice_sent = False  # a new outage gets its own notice if it overflows the buffer
        self.state = SessionState.RECONNECTING
        self.restoring = True
        self.user_speaking = False
        if self.activated and first_attempt:
            self.notify_restore = True
            out.append(
                self.emit_event(
                    {"type": "fleet.upstream", "event_id": new_event_id(), "state": "reconnecting"}
                )
            )
        delay = backoff_delay(self.upstream_attempts)
        self.upstream_attempts += 1
        out += [Measure("upstream_reconnect", labels={"reason": reason}), ReplaceUpstream(reason, delay)]
        return out

    def rotation_time(self) -> float | None:
        """From when the current upstream should be replaced (at the next turn boundary), if it is up."""
        if self.state is not SessionState.ACTIVE:
            return None
        cap = self.limits.upstream_max_session_s
        return self.upstream_opened_at + cap - min(300.0, cap * 0.25)

    def rotation_due(self, now: float) -> bool:
        rotation = self.rotation_time()
        return (
            rotation is not None
            and now >= rotation
            and self.active_response is None
            and not self.tools.busy
            and not self.user_speaking
            # Late events of the last turn (input transcripts) arrive shortly after response.done.
            and now - self.last_response_done_at >= 0.2
        )

    def rotate(self, now: float) -> list[Action]:
        """Before the upstream's session cap, move to a fresh upstream session at a turn boundary, silently."""
        self.state = SessionState.RECONNECTING
        self.restoring = True
        self.notify_restore = False
        return [Measure("upstream_reconnect", labels={"reason": "rotation"}), ReplaceUpstream("rotation")]

    def rebuild_actions(self, update_event_id: str) -> list[Action]:
        """Policy, then the conversation as text, then the note: what a fresh upstream session needs."""
        session = (
            updatable_session(self.effective_session) if self.effective_session else dict(self.policy.session)
        )
        update = {
            "type": "session.update",
            "event_id": update_event_id,
            "session": session,
        }
        out: list[Action] = [SendUpstream(dumps(update))]
        items = self.conversation.replay_items()
        if items:
            items.append(
                {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": RESUME_NOTE}],
                }
            )
        for index, item in enumerate(items):
            item_id = f"{INTERNAL_EVENT_PREFIX}r{index:04d}_{new_event_id('')[:8]}"
            self.tools.hidden_items.add(item_id)  # the client has these already
            create = {
                "type": "conversation.item.create",
                "event_id": new_event_id(INTERNAL_EVENT_PREFIX),
                "item": {"id": item_id, **item},
            }
            out.append(SendUpstream(dumps(create)))
        self.replayed = max(0, len(items) - 1)
        return out

    def hold_for_upstream(self, frame: str) -> list[Action]:
        """A client event while no upstream can take it: held (bounded), then dropped with one notice."""
        if len(self._queued_upstream) < self.limits.max_queued_before_ready:
            self._queued_upstream.append(frame)
            return []
        if self.state is SessionState.CONNECTING and not self.restoring:
            return self.close(act.WS_1013_TRY_AGAIN_LATER, "too many events before the session was ready")
        if self._dropped_notice_sent:
            return []
        self._dropped_notice_sent = True
        notice = error_event(
            "upstream_reconnecting",
            "The realtime service is reconnecting; events sent meanwhile beyond the buffer were dropped.",
            error_type="server_error",
        )
        return [self.emit_event(notice), Measure("error", labels={"code": "upstream_reconnecting"})]

    def requeue(self, frames: list[str]) -> None:
        """Frames that were on their way to an upstream that died go to the next one first."""
        self._queued_upstream[:0] = frames

    # ---- the client's socket ---------------------------------------------------------------------------------
    def client_detached(self, now: float) -> list[Action]:
        """The client's socket dropped; keep the session for the grace period so it can come back."""
        if self.state is SessionState.CLOSED:
            return []
        self.detached_at = now
        return [Measure("detached")]

    def client_attached(self, now: float, last_seq: int) -> tuple[list[str], bool]:
        """A resuming client: the server events after `last_seq` (oldest first), and whether some were lost."""
        self.detached_at = None
        self.last_client_activity = now
        return self.ring.since(last_seq)

    def resume_notice(self, replayed: int, gap: bool) -> list[Action]:
        """After the missed events: a fresh `fleet.session` (with the new token) for the resumed client."""
        out: list[Action] = []
        if gap:
            notice = error_event(
                "resume_gap",
                "Some events were older than this worker keeps and could not be replayed.",
                error_type="server_error",
            )
            out.append(self.emit_event(notice))
        fleet_session = {
            "type": "fleet.session",
            "event_id": new_event_id(),
            "session_id": self.session_id,
            "resume_token": self.resume_token,
            "resumed": True,
            "replayed": replayed,
            "seq": self.seq + 1,  # this event's own number: a client that counted the same has lost nothing
        }
        out.append(self.emit_event(fleet_session))
        return out

    def grace_over(self, now: float) -> list[Action]:
        return self._end("client_gone", act.WS_1001_GOING_AWAY, "client did not come back", "ended")

    # ---- drain and handover ----------------------------------------------------------------------------------
    def drain(self, now: float) -> list[Action]:
        """This worker is shutting down: hand the client over at the next turn boundary (now, if idle)."""
        self.draining = True
        if self.detached_at is not None:
            return self._end("migrated", act.WS_1012_SERVICE_RESTART, "worker draining", "migrate")
        if self.active_response is None and not self.tools.busy:
            return self.migrate("worker draining")
        return []

    def migrate(self, reason: str) -> list[Action]:
        if self.state is SessionState.CLOSED:
            return []
        notice = {
            "type": "fleet.migrate",
            "event_id": new_event_id(),
            "reason": reason,
            "resume_token": self.resume_token,
        }
        return [
            self.emit_event(notice),
            *self._end("migrated", act.WS_1012_SERVICE_RESTART, reason, "migrate"),
        ]

    def handover(self, now: float) -> list[Action]:
        """Another worker took this session (the client reconnected there): write a last checkpoint, let go."""
        return self._end("handed_over", act.WS_1012_SERVICE_RESTART, "session moved", "handover")

    def stale_owner(self, now: float) -> list[Action]:
        """A fenced write was refused: another worker owns this session. Stop serving it, write nothing more."""
        return self._end("stale_owner", act.WS_1012_SERVICE_RESTART, "session moved", None)

    def _end(self, reason: str, code: int, text: str, checkpoint: str | None) -> list[Action]:
        self.end_reason = reason
        return self.close(code, text, checkpoint)
