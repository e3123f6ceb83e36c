"""One simulated Realtime session, sans I/O: feed client frames and the time, take server events out.

No sockets, no clock reads: the caller passes `now` (monotonic seconds) into every call, sends what `drain()`
returns, and calls `drain()` again at `next_deadline()`. This keeps the protocol testable without a server.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from voicefleet.audio.formats import encode_from_24k
from voicefleet.simulator.config import SimulatorConfig
from voicefleet.simulator.conversation import Conversation, public_item
from voicefleet.simulator.input_turns import InputTurns
from voicefleet.simulator.latency import profile
from voicefleet.simulator.protocol import (
    ProtocolError,
    ServerEvent,
    error_event,
    event,
    new_id,
    unknown_parameter,
)
from voicefleet.simulator.response_stream import ResponsePlan, ResponseStream
from voicefleet.simulator.scenario import ScriptCursor, TemplateValues, render
from voicefleet.simulator.session_config import apply_session_update, default_session, validate_format
from voicefleet.simulator.session_items import validate_item
from voicefleet.simulator.usage import TokenRateWindow, count_input

# Fields each client event may carry besides `type` and `event_id` (anything else is `unknown_parameter`).
EVENT_FIELDS: Final[dict[str, frozenset[str]]] = {
    "session.update": frozenset({"session"}),
    "session.close": frozenset(),
    "input_audio_buffer.append": frozenset({"audio"}),
    "session.input_audio_buffer.append": frozenset({"audio"}),
    "input_audio_buffer.commit": frozenset(),
    "input_audio_buffer.clear": frozenset(),
    "conversation.item.create": frozenset({"item", "previous_item_id"}),
    "conversation.item.truncate": frozenset({"item_id", "content_index", "audio_end_ms"}),
    "conversation.item.delete": frozenset({"item_id"}),
    "conversation.item.retrieve": frozenset({"item_id"}),
    "response.create": frozenset({"response"}),
    "response.cancel": frozenset({"response_id"}),
}
_RESPONSE_FIELDS: Final = frozenset(
    {"output_modalities", "instructions", "audio", "tools", "tool_choice", "parallel_tool_calls",
     "max_output_tokens", "conversation", "input", "metadata", "prompt", "reasoning"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CloseConnection:
    code: int
    reason: str


Output = ServerEvent | CloseConnection
Synthesizer = Callable[[str], bytes]
ClientEventSink = Callable[[dict[str, Any]], None]


class SimulatorSession:
    def __init__(
        self,
        config: SimulatorConfig,
        *,
        model: str,
        now: float,
        synthesize: Synthesizer,
        rng: random.Random,
        record: ClientEventSink | None = None,
        wall_clock: float | None = None,
        session_id: str | None = None,
    ) -> None:
        self.id = session_id or new_id("sess_")
        self.closed = False
        self._config = config
        self._synthesize = synthesize
        self._rng = rng
        self._record = record
        self._latency = profile(config.profile)
        wall = time.time() if wall_clock is None else wall_clock
        self.session = default_session(self.id, model, int(wall + config.max_session_s))
        self.conversation = Conversation()
        self.conversation_id = new_id("conv_")
        self.active: ResponseStream | None = None
        self._script = ScriptCursor(config.scenario)
        self._template = TemplateValues()
        self._rate_window = TokenRateWindow()
        self._last_input_tokens = 0
        self._outbox: list[Output] = [event("session.created", session=self.session)]
        self.turns = InputTurns(self.conversation, self._script, self._template, self._push, self)
        faults = config.faults
        self._close_at = now + faults.close_after_s if faults.close_after_s is not None else None
        expire_after = config.max_session_s if faults.expire_after_s is None else faults.expire_after_s
        self._expire_at = now + expire_after
        self._configure_input()
        self._handlers: dict[str, Callable[[dict[str, Any], float], None]] = {
            "session.update": self._session_update,
            "session.close": self._session_close,
            "input_audio_buffer.append": self.turns.append,
            "session.input_audio_buffer.append": self.turns.append,
            "input_audio_buffer.commit": self.turns.commit,
            "input_audio_buffer.clear": self.turns.clear,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # ---- inputs ------------------------------------------------------------------------------------------
    def receive_text(self, text: str | bytes, now: float) -> None:
        self._pump(now)
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._recorded({"_invalid": "json", "length": len(text)})
            self._error("invalid_json", f"Invalid event: failed to parse JSON value. {exc}", None)
            return
        if not isinstance(data, dict):
            self._recorded({"_invalid": "not_an_object"})
            self._error("invalid_event", "Invalid event: expected a JSON object.", None)
            return
        self._recorded(data)
        client_event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        event_type = data.get("type")
        if event_type is None:
            self._error("invalid_event", "The 'type' field is missing.", client_event_id)
            return
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            supported = list(self._handlers)
            listed = ", ".join(f"'{name}'" for name in supported[:-1]) + f", and '{supported[-1]}'"
            message = f"Invalid value: '{event_type}'. Supported values are: {listed}."
            self._error("invalid_value", message, client_event_id, param="type")
            return
        try:
            for key in data:
                if key not in ("type", "event_id") and key not in EVENT_FIELDS[event_type]:
                    raise unknown_parameter(key)
            handler(data, now)
        except ProtocolError as exc:
            self._error(exc.code, exc.message, client_event_id, param=exc.param)

    def receive_binary(self, now: float) -> None:
        self._pump(now)
        self._recorded({"_invalid": "binary"})
        self._error(
            "invalid_event", "Expected a text WebSocket message; binary frames are not supported.", None
        )

    def drain(self, now: float) -> list[Output]:
        """Everything to send now, in order. After a CloseConnection nothing more comes out."""
        if self.closed:
            return []
        self._pump(now)
        if self._close_at is not None and now >= self._close_at:
            self._outbox.append(CloseConnection(self._config.faults.close_code, "simulated connection loss"))
        elif now >= self._expire_at:
            minutes = self._expire_minutes()
            self._outbox.append(
                error_event("session_expired", f"Your session hit the maximum duration of {minutes} minutes.")
            )
            # 1001 ("going away") is the close code reported for OpenAI's session expiry; the current GA code is
            # unconfirmed. It is also one the SDK's auto-reconnect treats as retryable, which is what expiry means.
            self._outbox.append(CloseConnection(1001, "invalid_request_error.session_expired"))
        out, self._outbox = self._outbox, []
        for index, item in enumerate(out):
            if isinstance(item, CloseConnection):
                self.closed = True
                return out[: index + 1]
        return out

    def next_deadline(self) -> float | None:
        """When `drain` next has something to send (-inf = right away), or None when only input can cause it."""
        if self._outbox:
            return float("-inf")
        candidates = [self._expire_at]
        if self._close_at is not None:
            candidates.append(self._close_at)
        if self.active is not None and (due := self.active.next_due()) is not None:
            candidates.append(due)
        if (due := self.turns.next_due()) is not None:
            candidates.append(due)
        return min(candidates)

    # ---- helpers -----------------------------------------------------------------------------------------
    def _expire_minutes(self) -> int:
        seconds = self._config.faults.expire_after_s or self._config.max_session_s
        return max(1, round(seconds / 60))

    def _recorded(self, data: dict[str, Any]) -> None:
        if self._record is not None:
            self._record(data)

    def _error(
        self, code: str | None, message: str, client_event_id: str | None, *, param: str | None = None
    ) -> None:
        self._outbox.append(error_event(code, message, param=param, client_event_id=client_event_id))

    def _emit(self, event_type: str, **fields: Any) -> None:
        self._outbox.append(event(event_type, **fields))

    def _push(self, server_event: ServerEvent) -> None:
        self._outbox.append(server_event)

    def _pump(self, now: float) -> None:
        """Move response, transcription and idle-timeout events that are due into the outbox, so they keep their
        place before newer events."""
        if self.active is not None:
            self._outbox.extend(self.active.due(now))
            self._settle(now)
        self.turns.pump(now)

    def _settle(self, now: float) -> None:
        if self.active is not None and self.active.done:
            usage = self.active.usage or {}
            self._emit(
                "rate_limits.updated",
                rate_limits=[self._rate_window.spend(now, usage.get("total_tokens", 0))],
            )
            self.turns.response_finished(now, self.active.audio_ms_sent)
            self.active = None

    def _configure_input(self) -> None:
        self.turns.configure(self.session["audio"]["input"])

    # ---- session -----------------------------------------------------------------------------------------
    def _session_update(self, data: dict[str, Any], now: float) -> None:
        if "session" not in data:
            raise ProtocolError(
                "missing_required_parameter", "Missing required parameter: 'session'.", "session"
            )
        self.session = apply_session_update(self.session, data["session"])
        self._configure_input()
        self._emit("session.updated", session=self.session)

    def _session_close(self, data: dict[str, Any], now: float) -> None:
        self._outbox.append(CloseConnection(1000, ""))

    # ---- conversation items ------------------------------------------------------------------------------
    def _item_create(self, data: dict[str, Any], now: float) -> None:
        stored = validate_item(data.get("item"), self.conversation, self.turns.buffer.format_type)
        previous = self.conversation.insert(stored, data.get("previous_item_id"))
        item = stored.item
        if item["type"] == "function_call_output":
            self._template.function_output = str(item.get("output", ""))
        elif item["type"] == "message" and item.get("role") == "user":
            texts = [
                str(p.get("text", "")) for p in item.get("content") or [] if p.get("type") == "input_text"
            ]
            if texts:
                self._template.user_text = " ".join(texts)
        self._emit("conversation.item.added", previous_item_id=previous, item=public_item(item))
        self._emit("conversation.item.done", previous_item_id=previous, item=public_item(item))

    def _item_truncate(self, data: dict[str, Any], now: float) -> None:
        item_id, audio_end_ms = data.get("item_id"), data.get("audio_end_ms")
        if not isinstance(item_id, str):
            raise ProtocolError(
                "missing_required_parameter", "Missing required parameter: 'item_id'.", "item_id"
            )
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise ProtocolError("invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.",
                                "audio_end_ms")  # fmt: skip
        stored = self.conversation.get(item_id, "truncate")
        if stored.item.get("role") != "assistant" or stored.item.get("type") != "message":
            raise ProtocolError("invalid_value", "Only assistant messages can be truncated.", "item_id")
        if audio_end_ms > stored.audio_ms:
            raise ProtocolError(
                "invalid_value",
                f"Audio content of {int(stored.audio_ms)}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        keep = audio_end_ms * (len(stored.audio) / stored.audio_ms if stored.audio_ms else 0)
        del stored.audio[int(keep) - int(keep) % 2 :]
        stored.audio_ms = float(audio_end_ms)
        for part in stored.item.get("content") or []:
            if "transcript" in part:
                part["transcript"] = ""  # the server drops the transcript of a truncated item
        content_index = data.get("content_index", 0)
        self._emit("conversation.item.truncated", item_id=item_id, content_index=content_index,
                   audio_end_ms=audio_end_ms)  # fmt: skip

    def _item_delete(self, data: dict[str, Any], now: float) -> None:
        item_id = str(data.get("item_id"))
        self.conversation.delete(item_id)
        self._emit("conversation.item.deleted", item_id=item_id)

    def _item_retrieve(self, data: dict[str, Any], now: float) -> None:
        item_id = str(data.get("item_id"))
        self._emit(
            "conversation.item.retrieved",
            item=self.conversation.retrieved(item_id, self.turns.buffer.format_type),
        )

    # ---- responses (the Responder that input turns drive) -------------------------------------------------
    def response_active(self) -> bool:
        return self.active is not None

    def interrupt(self, now: float) -> None:
        if self.active is not None:
            self._outbox.extend(self.active.cancel("turn_detected"))
            self._settle(now)

    def respond(self, now: float) -> None:
        self._start_response(None, now)

    def _response_create(self, data: dict[str, Any], now: float) -> None:
        if self.active is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        overrides = data.get("response")
        if overrides is not None and not isinstance(overrides, dict):
            raise ProtocolError(
                "invalid_type", "Invalid type for 'response': expected an object.", "response"
            )
        for key in overrides or {}:
            if key not in _RESPONSE_FIELDS:
                raise unknown_parameter(f"response.{key}")
        self._start_response(overrides, now)

    def _response_cancel(self, data: dict[str, Any], now: float) -> None:
        wanted = data.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise ProtocolError("response_cancel_not_active", "Cancellation failed: no active response found")
        self._outbox.extend(self.active.cancel("client_cancelled"))
        self._settle(now)

    def _start_response(self, overrides: dict[str, Any] | None, now: float) -> None:
        overrides = overrides or {}
        out_of_band = overrides.get("conversation") == "none"
        modalities = overrides.get("output_modalities", self.session["output_modalities"])
        modality = "text" if modalities == ["text"] else "audio"
        audio_out = dict(self.session["audio"]["output"])
        given_out = ((overrides.get("audio") or {}).get("output")) or {}
        if "format" in given_out:
            audio_out["format"] = validate_format(given_out["format"], "response.audio.output.format")
        audio_out["voice"] = given_out.get("voice", audio_out["voice"])
        turn_say: str | None
        if out_of_band:
            turn_say, call = self._config.scenario.default_reply, None
        else:
            turn = self._script.next_turn()
            turn_say, call = turn.say, turn.function_call
        text = render(turn_say, self._template) if turn_say is not None else None
        audio = b""
        if text is not None and modality == "audio":
            audio = encode_from_24k(audio_out["format"]["type"], self._synthesize(text))
        plan = ResponsePlan(
            modality=modality, text=text, audio=audio, audio_format=audio_out["format"], voice=audio_out["voice"],
            function_call=call, conversation_id=None if out_of_band else self.conversation_id,
            max_output_tokens=overrides.get("max_output_tokens", self.session["max_output_tokens"]),
            metadata=overrides.get("metadata"),
        )  # fmt: skip
        items = [(stored.item, stored.audio_ms) for stored in self.conversation.items()]
        inputs = count_input(str(overrides.get("instructions", self.session["instructions"])),
                             list(overrides.get("tools", self.session["tools"])), items)  # fmt: skip
        cached, self._last_input_tokens = self._last_input_tokens, inputs.total
        self.active = ResponseStream(
            plan,
            start=now,
            first_output_delay_s=self._latency.sample_ms(self._rng) / 1000.0,
            pacing=self._config.pacing,
            conversation=None if out_of_band else self.conversation,
            input_tokens=inputs,
            cached_tokens=cached,
        )
        self.turns.response_started()
        self._outbox.extend(self.active.due(now))
