"""The session core: one client, one upstream, events in, actions out. No I/O and no clock inside.

The runner feeds it client frames, upstream frames and the current time, and performs the actions it returns
(send to client, send upstream, close, run a tool, checkpoint, measure). Frames that need no change are
forwarded as the very same string: audio appends and audio deltas are never re-serialized.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from voicefleet.realtime import actions as act
from voicefleet.realtime.actions import Action, CloseClient, Log, Measure, SendUpstream
from voicefleet.realtime.continuity import ContinuityHandlers, SessionState
from voicefleet.realtime.conversation import ConversationLog
from voicefleet.realtime.events import (
    AUDIO_APPEND,
    AUDIO_DELTA,
    CLIENT_EVENT_SET,
    FLEET_PREFIX,
    base64_field_length,
    dumps,
    error_event,
    peek_type,
    string_field,
    unknown_type_message,
)
from voicefleet.realtime.interruption import BargeIn
from voicefleet.realtime.limits import RateLimiter, SessionLimits
from voicefleet.realtime.playback import PlaybackTracker
from voicefleet.realtime.policy import SessionPolicy
from voicefleet.realtime.ring import EventRing
from voicefleet.realtime.tooling import ToolCoordinator
from voicefleet.realtime.upstream_events import UpstreamHandlers


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    session_id: str
    resume_token: str
    resumed: bool = False


class RealtimeSession(UpstreamHandlers, ContinuityHandlers):
    def __init__(
        self,
        identity: SessionIdentity,
        policy: SessionPolicy,
        limits: SessionLimits,
        now: float,
        conversation: ConversationLog | None = None,
        *,
        initial_seq: int = 0,
        effective_session: dict[str, Any] | None = None,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.limits = limits
        self.state = SessionState.CONNECTING
        self.started_at = now
        self.last_client_activity = now
        self.seq = initial_seq  # a session resumed elsewhere continues the client's event count
        self.resume_token = identity.resume_token
        self.ring = EventRing(limits.ring_events, limits.ring_bytes)
        self.conversation = conversation or ConversationLog()
        self.tracker = PlaybackTracker()
        self.barge_in = BargeIn(self.tracker, limits.client_truncate_grace_s)
        self.tools = ToolCoordinator(policy.server_tool_names)
        self.rate = RateLimiter(limits.max_messages_per_s, now)
        self.effective_session: dict[str, Any] = effective_session or {}
        self.last_upstream_error: str | None = None
        self.user_speaking = False
        self.server_cancels = True  # turn_detection.interrupt_response, from the effective session
        self.active_response: str | None = None
        self.speech_stopped_at: float | None = None
        self.audio_buffer_bytes = 0
        self.input_audio_bytes = 0
        self.output_audio_bytes = 0
        self.response_created_at: float | None = None
        self.draining = False
        self.turns = 0
        self.interruptions = 0
        self.end_reason = ""
        self.last_client_type = ""
        self.last_upstream_type = ""
        self._held_created: dict[str, Any] | None = None
        self._policy_event_id = ""
        self._queued_upstream: list[str] = []
        self._last_rate_error = -1.0
        self._client_handlers: dict[str, Callable[[dict[str, Any], str, float], list[Action]]] = {
            "session.update": self._client_session_update,
            "conversation.item.truncate": self._client_truncate,
            "fleet.playback": self._client_playback,
        }
        self._upstream_table = self._upstream_handlers()
        self._init_continuity(now, identity.resumed)

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    # ---- emitting -----------------------------------------------------------------------------------------
    def to_upstream(self, frame: str) -> list[Action]:
        if self.state in (SessionState.ACTIVE, SessionState.CONFIGURING):
            return [SendUpstream(frame)]
        if self.state in (SessionState.CONNECTING, SessionState.RECONNECTING):
            return self.hold_for_upstream(frame)
        return []

    def client_error(
        self, code: str | None, message: str, *, param: str | None = None, event_id: Any = None
    ) -> list[Action]:
        eid = event_id if isinstance(event_id, str) else None
        return [
            self.emit_event(error_event(code, message, param=param, event_id=eid)),
            Measure("error", labels={"code": code or "none"}),
        ]

    def close(self, code: int, reason: str, checkpoint: str | None = "ended") -> list[Action]:
        """End the session. `checkpoint` names the last write ("ended" is final; "migrate" and "handover" leave
        the session resumable elsewhere; None writes nothing, for an owner that lost the session)."""
        if self.state is SessionState.CLOSED:
            return []
        self.state = SessionState.CLOSED
        self.end_reason = self.end_reason or reason
        out: list[Action] = [
            CloseClient(code, reason),
            act.CloseUpstream(act.WS_1000_NORMAL, "client session ended"),
        ]
        if checkpoint is not None:
            out.append(act.Checkpoint(checkpoint))
        return out

    # ---- client side --------------------------------------------------------------------------------------
    def client_text(self, frame: str, now: float) -> list[Action]:
        self.last_client_activity = now
        if self.state is SessionState.CLOSED:
            return []
        if not self.rate.allow(now):
            self.last_client_type = "rate_limited"
            if now - self._last_rate_error < 1.0:
                return []  # one error a second is enough; a flood of errors would be its own flood
            self._last_rate_error = now
            return self.client_error(
                "rate_limit_exceeded",
                f"Too many events: this session allows {self.limits.max_messages_per_s:g} per second.",
            )
        kind = peek_type(frame)
        if kind == AUDIO_APPEND:
            self.last_client_type = kind
            return self._client_append(frame)
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            self.last_client_type = "invalid"
            return self.client_error("invalid_json", f"Invalid event: failed to parse JSON value. {exc}")
        if not isinstance(event, dict):
            self.last_client_type = "invalid"
            return self.client_error("invalid_event", "Invalid event: expected a JSON object.")
        kind = event.get("type")
        event_id = event.get("event_id")
        if not isinstance(kind, str):
            self.last_client_type = "invalid"
            return self.client_error(
                "invalid_event", "The 'type' field is missing.", param="type", event_id=event_id
            )
        self.last_client_type = kind
        handler = self._client_handlers.get(kind)
        if handler is not None:
            return handler(event, frame, now)
        if kind == AUDIO_APPEND:
            return self._client_append(frame, event)
        if kind in CLIENT_EVENT_SET or kind in self.limits.extra_client_event_types:
            return self.to_upstream(frame)
        if kind.startswith(FLEET_PREFIX):
            return self.client_error(
                "invalid_value", f"Unknown fleet event '{kind}'.", param="type", event_id=event_id
            )
        return self.client_error("invalid_value", unknown_type_message(kind), param="type", event_id=event_id)

    def client_binary(self, now: float) -> list[Action]:
        self.last_client_activity = now
        self.last_client_type = "binary"
        return self.client_error(
            "invalid_event", "Expected a text WebSocket message; binary frames are not supported."
        )

    def _client_append(self, frame: str, event: dict[str, Any] | None = None) -> list[Action]:
        if event is None:
            try:
                event = orjson.loads(frame)
            except orjson.JSONDecodeError as exc:
                return self.client_error("invalid_json", f"Invalid event: failed to parse JSON value. {exc}")
        assert event is not None
        audio = event.get("audio")
        try:
            if not isinstance(audio, str):
                raise ValueError("not a string")
            size = len(binascii.a2b_base64(audio, strict_mode=True))
        except (binascii.Error, ValueError):
            return self.client_error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio bytes (mono PCM16 at 24kHz) but got an invalid value.",
                param="audio",
                event_id=event.get("event_id"),
            )
        if self.audio_buffer_bytes + size > self.limits.max_audio_buffer_bytes:
            return self.client_error(
                "input_audio_buffer_too_large",
                f"The input audio buffer would exceed {self.limits.max_audio_buffer_bytes} bytes; "
                "commit or clear it first.",
                param="audio",
                event_id=event.get("event_id"),
            )
        self.audio_buffer_bytes += size
        self.input_audio_bytes += size
        return self.to_upstream(frame)

    def _client_session_update(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        allowed, error = self.policy.check_client_update(event)
        if error is not None:
            return [self.emit_event(error), Measure("error", labels={"code": str(error["error"]["code"])})]
        assert allowed is not None
        return self.to_upstream(frame if allowed is event else dumps(allowed))

    def _client_truncate(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item_id = event.get("item_id")
        if isinstance(item_id, str) and not self.barge_in.client_truncate(item_id):
            return [
                Log("client_truncate_dropped", {"item_id": item_id, "why": "already truncated by the worker"})
            ]
        if isinstance(item_id, str):
            self.tracker.clear(now)
        return self.to_upstream(frame)

    def _client_playback(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item_id, played = event.get("item_id"), event.get("played_ms")
        if not isinstance(item_id, str) or not isinstance(played, int | float) or isinstance(played, bool):
            return self.client_error(
                "invalid_value",
                "fleet.playback needs 'item_id' (string) and 'played_ms' (number).",
                param="played_ms",
                event_id=event.get("event_id"),
            )
        self.tracker.acknowledge(item_id, float(played), now)
        return []

    # ---- upstream side (fast path here, the rest in UpstreamHandlers) -------------------------------------
    def upstream_text(self, frame: str, now: float) -> list[Action]:
        if self.state is SessionState.CLOSED:
            return []
        kind = peek_type(frame)
        if kind == AUDIO_DELTA:
            self.last_upstream_type = kind
            return self._audio_delta(frame, now)
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return [Log("upstream_invalid_json", {"size": len(frame)})]
        if not isinstance(event, dict):
            return [Log("upstream_invalid_event", {"size": len(frame)})]
        kind = str(event.get("type"))
        self.last_upstream_type = kind
        if kind == AUDIO_DELTA:
            return self._audio_delta(frame, now, event)
        return self.handle_upstream_event(kind, event, frame, now)

    def _audio_delta(self, frame: str, now: float, event: dict[str, Any] | None = None) -> list[Action]:
        item_id = string_field(frame, "item_id") if event is None else event.get("item_id")
        b64_len = base64_field_length(frame, "delta") if event is None else len(str(event.get("delta", "")))
        if item_id is None or b64_len is None:
            return self._audio_delta(frame, now, orjson.loads(frame))
        out: list[Action] = []
        if self.speech_stopped_at is not None:
            out.append(Measure("turn_latency", now - self.speech_stopped_at))
            self.speech_stopped_at = None
        if self.response_created_at is not None:
            out.append(Measure("upstream_first_audio", now - self.response_created_at))
            self.response_created_at = None
        size = b64_len * 3 // 4
        self.output_audio_bytes += size
        self.tracker.audio_sent(str(item_id), size, now)
        out.append(self.emit(frame))
        return out

    def next_deadline(self, now: float | None = None) -> float:
        """When `tick` next has something to do (the runner also wakes it after turn boundaries)."""
        deadlines = [self.started_at + self.limits.max_session_s]
        rotation = self.rotation_time()
        if now is not None and rotation is not None:
            settle = self.last_response_done_at + 0.2
            deadlines += [t for t in (rotation, settle) if t > now]
        if self.detached_at is not None:
            deadlines.append(self.detached_at + self.limits.resume_grace_s)
        else:
            deadlines.append(self.last_client_activity + self.limits.max_idle_s)
        pending = self.barge_in.next_deadline()
        if pending is not None:
            deadlines.append(pending)
        return min(deadlines)

    def tick(self, now: float) -> list[Action]:
        if self.state is SessionState.CLOSED:
            return []
        out: list[Action] = [SendUpstream(dumps(e)) for e in self.barge_in.due(now)]
        if self.detached_at is not None and now >= self.detached_at + self.limits.resume_grace_s:
            return out + self.grace_over(now)
        if self.rotation_due(now):
            out += self.rotate(now)
        if now >= self.started_at + self.limits.max_session_s:
            out += self.client_error(
                "session_expired",
                f"The session reached its maximum duration of {self.limits.max_session_s:g} seconds.",
            )
            out += self.close(act.WS_1008_POLICY_VIOLATION, "max_session_duration")
        elif self.detached_at is None and now >= self.last_client_activity + self.limits.max_idle_s:
            out += self.client_error(
                "idle_timeout",
                f"The session was idle for {self.limits.max_idle_s:g} seconds and has been closed.",
            )
            out += self.close(act.WS_1008_POLICY_VIOLATION, "idle_timeout")
        return out
