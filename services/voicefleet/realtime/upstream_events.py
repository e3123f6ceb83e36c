"""How the session core treats each upstream (server) event other than audio deltas.

A registry from event type to handler keeps this flat. Anything without a handler, including event types OpenAI
adds later, is forwarded to the client untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voicefleet.realtime.actions import Action, Checkpoint, Log, Measure, RunTool, SendClient, SendUpstream
from voicefleet.realtime.continuity import SessionState
from voicefleet.realtime.events import INTERNAL_EVENT_PREFIX, dumps, new_event_id
from voicefleet.realtime.ring import EventRing

if TYPE_CHECKING:
    from voicefleet.realtime.conversation import ConversationLog
    from voicefleet.realtime.interruption import BargeIn
    from voicefleet.realtime.playback import PlaybackTracker
    from voicefleet.realtime.policy import SessionPolicy
    from voicefleet.realtime.session import SessionIdentity
    from voicefleet.realtime.tooling import ToolCoordinator

Handler = Callable[[dict[str, Any], str, float], list[Action]]

# Events that name an item by `item_id` (or carry it in `item.id`) and must be hidden for server-tool items.
_ITEM_EVENTS = frozenset(
    {
        "response.output_item.added",
        "response.output_item.done",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "response.function_call_arguments.delta",
        "response.content_part.added",
        "response.content_part.done",
    }
)


def _item_id(event: dict[str, Any]) -> Any:
    item = event.get("item")
    return item.get("id") if isinstance(item, dict) else event.get("item_id")


class UpstreamHandlers:
    # Provided by RealtimeSession.
    identity: SessionIdentity
    policy: SessionPolicy
    state: SessionState
    tools: ToolCoordinator
    barge_in: BargeIn
    tracker: PlaybackTracker
    conversation: ConversationLog
    ring: EventRing
    effective_session: dict[str, Any]
    server_cancels: bool
    active_response: str | None
    speech_stopped_at: float | None
    response_created_at: float | None
    draining: bool
    audio_buffer_bytes: int
    turns: int
    interruptions: int
    _held_created: dict[str, Any] | None
    _policy_event_id: str
    _queued_upstream: list[str]
    _upstream_table: dict[str, Handler]
    resume_token: str
    restoring: bool
    notify_restore: bool
    activated: bool
    upstream_attempts: int
    replayed: int
    last_upstream_error: str | None
    last_response_done_at: float
    user_speaking: bool
    migrate: Callable[[str], list[Action]]
    rebuild_actions: Callable[[str], list[Action]]

    seq: int

    def emit(self, frame: str) -> SendClient:
        """A server event for the client: numbered and kept in the ring for replay to a resuming client."""
        self.seq += 1
        self.ring.append(self.seq, frame)
        return SendClient(frame, self.seq)

    def emit_event(self, event: dict[str, Any]) -> SendClient:
        return self.emit(dumps(event))

    def handle_upstream_event(self, kind: str, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        if kind in _ITEM_EVENTS and self.tools.hidden_items and _item_id(event) in self.tools.hidden_items:
            return []
        handler = self._upstream_table.get(kind)
        if handler is not None:
            return handler(event, frame, now)
        return [self.emit(frame)]

    def _upstream_handlers(self) -> dict[str, Handler]:
        return {
            "session.created": self._session_created,
            "session.updated": self._session_updated,
            "error": self._error,
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "input_audio_buffer.committed": self._buffer_emptied,
            "input_audio_buffer.cleared": self._buffer_emptied,
            "response.created": self._response_created,
            "response.output_item.added": self._output_item_added,
            "response.function_call_arguments.done": self._arguments_done,
            "response.done": self._response_done,
            "conversation.item.done": self._item_done,
            "conversation.item.input_audio_transcription.completed": self._transcript,
            "conversation.item.truncated": self._item_truncated,
            "conversation.item.deleted": self._item_deleted,
        }

    # ---- session setup ------------------------------------------------------------------------------------
    def _session_created(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        if self.state is not SessionState.CONNECTING:
            return [self.emit(self._redacted(event))]
        self._held_created = event
        self.state = SessionState.CONFIGURING
        self._policy_event_id = new_event_id(INTERNAL_EVENT_PREFIX)
        out: list[Action]
        if self.restoring:
            out = self.rebuild_actions(self._policy_event_id)
        else:
            out = [SendUpstream(dumps(self.policy.initial_update(self._policy_event_id)))]
        out += [SendUpstream(f) for f in self._queued_upstream]
        self._queued_upstream = []
        return out

    def _session_updated(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        session = event.get("session")
        if isinstance(session, dict):
            self._apply_effective(session)
        if self.state is SessionState.CONFIGURING and self._held_created is not None:
            # The client's session.created shows the session as the policy made it, not OpenAI's defaults.
            created = dict(self._held_created)
            if isinstance(session, dict):
                created["session"] = session
            return self._activate(created)
        return [self.emit(self._redacted(event))]

    def _activate(self, created: dict[str, Any]) -> list[Action]:
        self.state = SessionState.ACTIVE
        self._held_created = None
        self.upstream_attempts = 0
        if self.activated:
            # A replaced upstream: the client keeps its session; it hears about it only if it saw the loss.
            self.restoring = False
            notice: list[Action] = [Measure("upstream_restored")]
            if self.notify_restore:
                notice.append(
                    self.emit_event(
                        {"type": "fleet.upstream", "event_id": new_event_id(), "state": "restored"}
                    )
                )
            self.notify_restore = False
            return notice
        self.activated = True
        self.restoring = False
        shown = self.emit(self._redacted(created))
        fleet_session = {
            "type": "fleet.session",
            "event_id": new_event_id(),
            "session_id": self.identity.session_id,
            "resume_token": self.resume_token,
            "resumed": self.identity.resumed,
            "replayed": self.replayed,
            "seq": self.seq + 1,  # this event's own number: a client that counted the same has lost nothing
        }
        return [shown, self.emit_event(fleet_session), Checkpoint("started")]

    def _apply_effective(self, session: dict[str, Any]) -> None:
        self.effective_session = session
        audio_in = session.get("audio", {}).get("input", {}) if isinstance(session.get("audio"), dict) else {}
        detection = audio_in.get("turn_detection") if isinstance(audio_in, dict) else None
        self.server_cancels = isinstance(detection, dict) and bool(detection.get("interrupt_response", True))
        self.tracker.bytes_per_ms = self.policy.output_bytes_per_ms(session)

    def _redacted(self, event: dict[str, Any]) -> str:
        session = event.get("session")
        if not isinstance(session, dict):
            return dumps(event)
        return dumps({**event, "session": self.policy.redact(session)})

    # ---- errors -------------------------------------------------------------------------------------------
    def _error(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        assert isinstance(error, dict)
        code, origin = error.get("code"), error.get("event_id")
        self.last_upstream_error = code if isinstance(code, str) else None
        if isinstance(origin, str) and origin.startswith(INTERNAL_EVENT_PREFIX):
            out: list[Action] = [
                Log("upstream_rejected_internal_event", {"code": code, "message": error.get("message")})
            ]
            if (
                origin == self._policy_event_id
                and self.state is SessionState.CONFIGURING
                and self._held_created
            ):
                out += self._activate(
                    self._held_created
                )  # go on with the upstream's defaults; the log says why
            return out
        if code == "session_expired":
            # The upstream's own session cap: the close that follows is answered with a fresh upstream session.
            return [Log("upstream_session_expired", {"message": error.get("message")})]
        if code == "response_cancel_not_active":
            # A cancel racing the server's own auto-cancel on barge-in: benign, never a failure for the client.
            return [Measure("cancel_race_absorbed")]
        return [self.emit(frame), Measure("error", labels={"code": str(code)})]

    # ---- turns and barge-in -------------------------------------------------------------------------------
    def _speech_started(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        self.audio_buffer_bytes = 0
        self.user_speaking = True
        out: list[Action] = [self.emit(frame)]
        detection_on = bool(self.effective_session.get("audio", {}).get("input", {}).get("turn_detection"))
        events, interrupted = self.barge_in.speech_started(
            now, self.active_response, self.server_cancels and detection_on
        )
        out += [SendUpstream(dumps(e)) for e in events]
        if interrupted:
            self.interruptions += 1
            out.append(Measure("interruption"))
        return out

    def _speech_stopped(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        self.speech_stopped_at = now
        self.user_speaking = False
        return [self.emit(frame)]

    def _buffer_emptied(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        self.audio_buffer_bytes = 0
        return [self.emit(frame)]

    def _response_created(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        response = event.get("response")
        self.active_response = response.get("id") if isinstance(response, dict) else None
        self.response_created_at = now
        return [self.emit(frame)]

    # ---- server-side tools --------------------------------------------------------------------------------
    def _output_item_added(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item = event.get("item")
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and self.tools.owns(item.get("name"))
        ) and not self.policy.expose_server_policy:
            self.tools.hidden_items.add(str(item.get("id")))
            return []
        return [self.emit(frame)]

    def _arguments_done(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item_id = str(event.get("item_id"))
        if not (self.tools.owns(event.get("name")) or item_id in self.tools.hidden_items):
            return [self.emit(frame)]  # a client-side tool: the client runs it
        out = self._start_call(event.get("response_id"), item_id, event.get("call_id"), event)
        if self.policy.expose_server_policy:
            out.append(self.emit(frame))
        return out

    def _start_call(
        self, response_id: Any, item_id: str, call_id: Any, source: dict[str, Any]
    ) -> list[Action]:
        if not isinstance(call_id, str) or not self.tools.call_requested(str(response_id), item_id, call_id):
            return []
        return [RunTool(call_id, str(source.get("name")), str(source.get("arguments", "")))]

    def tool_finished(self, call_id: str, output: str, now: float) -> list[Action]:
        out: list[Action] = [SendUpstream(dumps(self.tools.output_event(call_id, output)))]
        if self.tools.call_finished(call_id) is not None:
            out.append(self._follow_up())
        return out

    def _follow_up(self) -> SendUpstream:
        return SendUpstream(
            dumps({"type": "response.create", "event_id": new_event_id(INTERNAL_EVENT_PREFIX)})
        )

    def _response_done(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        assert isinstance(response, dict)
        response_id = str(response.get("id"))
        if self.active_response == response_id:
            self.active_response = None
        self.last_response_done_at = now
        self.turns += 1
        out: list[Action] = []
        hidden = False
        out.append(Checkpoint("turn", barrier=True))  # before response.done reaches the client
        for item in response.get("output") or []:
            if (
                isinstance(item, dict)
                and item.get("type") == "function_call"
                and self.tools.owns(item.get("name"))
            ):
                hidden = True
                out += self._start_call(response_id, str(item.get("id")), item.get("call_id"), item)
        if hidden and not self.policy.expose_server_policy:
            shown = [
                i
                for i in response.get("output") or []
                if not (isinstance(i, dict) and i.get("id") in self.tools.hidden_items)
            ]
            out.append(self.emit(dumps({**event, "response": {**response, "output": shown}})))
        else:
            out.append(self.emit(frame))
        usage = response.get("usage")
        if isinstance(usage, dict):
            out.append(Measure("usage", payload=usage))
        out.append(Measure("response_done", labels={"status": str(response.get("status"))}))
        if self.tools.response_done(response_id) is not None:
            out.append(self._follow_up())
        if self.draining and self.active_response is None and not self.tools.busy:
            out += self.migrate("worker draining")
        return out

    # ---- conversation record ------------------------------------------------------------------------------
    def _item_done(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item = event.get("item")
        if not isinstance(item, dict):
            return [self.emit(frame)]
        if self.conversation.item_done(item):
            # Each item is written when it is final (the user's input, the reply, a tool call and its output), ahead
            # of response.done: a worker lost right after a turn must not take the turn's reply with it.
            return [Checkpoint("item"), self.emit(frame)]
        return [self.emit(frame)]

    def _transcript(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item_id, text = event.get("item_id"), event.get("transcript")
        if isinstance(item_id, str) and isinstance(text, str) and self.conversation.transcript(item_id, text):
            return [Checkpoint("item"), self.emit(frame)]
        return [self.emit(frame)]

    def _item_truncated(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        if isinstance(item_id, str) and isinstance(end_ms, int):
            self.conversation.truncated(item_id, end_ms, self.tracker.history.get(item_id))
        return [self.emit(frame), Measure("truncation")]

    def _item_deleted(self, event: dict[str, Any], frame: str, now: float) -> list[Action]:
        if isinstance(event.get("item_id"), str):
            self.conversation.deleted(event["item_id"])
        return [self.emit(frame)]
