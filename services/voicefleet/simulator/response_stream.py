"""One response, from `response.created` to `response.done`, as a timed sequence of server events.

The stream is a list of steps, each due at a moment (session clock seconds). `due(now)` runs the steps whose
time has come; `cancel(reason)` drops the rest and closes whatever is open exactly as REALTIME_PROTOCOL.md §4.6
describes (done events for open parts and items, then `response.done` with status `cancelled`).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicefleet.audio.formats import bytes_per_ms
from voicefleet.simulator.config import AudioPacing
from voicefleet.simulator.conversation import Conversation, StoredItem, public_item
from voicefleet.simulator.protocol import ServerEvent, event, new_id, obfuscation
from voicefleet.simulator.scenario import FunctionCallStep
from voicefleet.simulator.usage import InputTokens, text_tokens, usage

TEXT_DELTA_INTERVAL_S = 0.025  # one word per 25 ms at speed factor 1


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    """What the response will contain, decided before it starts."""

    modality: str
    """"audio" (audio + transcript) or "text"."""
    text: str | None
    """The assistant message (spoken or written); None for a response that only calls a function."""
    audio: bytes
    """Reply audio in the output wire format (empty for text)."""
    audio_format: dict[str, Any]
    voice: Any
    function_call: FunctionCallStep | None
    conversation_id: str | None
    """None for an out-of-band response (`conversation: "none"`): nothing is written to the conversation."""
    max_output_tokens: Any = "inf"
    metadata: Any = None


class ResponseStream:
    def __init__(
        self,
        plan: ResponsePlan,
        *,
        start: float,
        first_output_delay_s: float,
        pacing: AudioPacing,
        conversation: Conversation | None,
        input_tokens: InputTokens,
        cached_tokens: int,
    ) -> None:
        self.plan = plan
        self.id = new_id("resp_")
        self.done = False
        self.usage: dict[str, Any] | None = None
        self._conversation = conversation if plan.conversation_id else None
        self._input_tokens = input_tokens
        self._cached_tokens = cached_tokens
        self._output: list[dict[str, Any]] = []
        self._open_item: dict[str, Any] | None = None
        self._open_stored: StoredItem | None = None
        self._open_previous: str | None = None
        self._written = ""  # transcript or text sent so far
        self._arguments_sent = ""
        self._audio_ms_sent = 0.0
        self._steps: deque[tuple[float, Callable[[], list[ServerEvent]]]] = deque()
        self._schedule(start + first_output_delay_s, pacing)
        self._pending: list[ServerEvent] = [event("response.created", response=self._response("in_progress"))]

    # ---- public ------------------------------------------------------------------------------------------
    @property
    def audio_ms_sent(self) -> float:
        """Reply audio sent so far: what the client has to play (the idle timeout waits for it)."""
        return self._audio_ms_sent

    def next_due(self) -> float | None:
        if self._pending:
            return float("-inf")
        return self._steps[0][0] if self._steps else None

    def due(self, now: float) -> list[ServerEvent]:
        out, self._pending = self._pending, []
        while self._steps and self._steps[0][0] <= now:
            _, step = self._steps.popleft()
            out.extend(step())
        return out

    def cancel(self, reason: str) -> list[ServerEvent]:
        """Close what is open and finish with status `cancelled` (`turn_detected` or `client_cancelled`)."""
        out, self._pending = self._pending, []
        self._steps.clear()
        if self._open_item is not None:
            out.extend(self._close_open_item("incomplete"))
        out.extend(self._finish("cancelled", {"type": "cancelled", "reason": reason}))
        return out

    # ---- schedule ----------------------------------------------------------------------------------------
    def _schedule(self, first: float, pacing: AudioPacing) -> None:
        at = first
        plan = self.plan
        if plan.text is not None:
            self._steps.append((at, self._open_message))
            if plan.modality == "audio":
                chunk_bytes = max(1, pacing.chunk_ms * bytes_per_ms(plan.audio_format["type"]))
                pieces = [plan.audio[i : i + chunk_bytes] for i in range(0, len(plan.audio), chunk_bytes)]
                words = plan.text.split(" ")
                interval = pacing.chunk_ms / 1000.0 / pacing.speed_factor
                for index, piece in enumerate(pieces):
                    lo = index * len(words) // len(pieces)
                    hi = (index + 1) * len(words) // len(pieces)
                    self._steps.append((at, self._audio_step(piece, words[lo:hi], lo == 0)))
                    at += interval
            else:
                for index, word in enumerate(plan.text.split(" ")):
                    self._steps.append((at, self._text_step(word if index == 0 else " " + word)))
                    at += TEXT_DELTA_INTERVAL_S / pacing.speed_factor
            self._steps.append((at, lambda: self._close_open_item("completed")))
        if plan.function_call is not None:
            self._steps.append((at, self._function_call_step(plan.function_call)))
        self._steps.append((at, lambda: self._finish("completed", None)))

    # ---- steps -------------------------------------------------------------------------------------------
    def _ids(self) -> dict[str, Any]:
        assert self._open_item is not None
        return {"response_id": self.id, "item_id": self._open_item["id"], "output_index": len(self._output)}

    def _add_item(self, item: dict[str, Any]) -> list[ServerEvent]:
        self._open_item = item
        out = [
            event(
                "response.output_item.added", response_id=self.id, output_index=len(self._output), item=item
            )
        ]
        if self._conversation is not None:
            self._open_stored = StoredItem(item=item)
            previous = self._conversation.insert(self._open_stored)
            self._open_previous = previous
            out.append(event("conversation.item.added", previous_item_id=previous, item=public_item(item)))
        return out

    def _open_message(self) -> list[ServerEvent]:
        item = {"id": new_id("item_"), "type": "message", "object": "realtime.item", "status": "in_progress",
                "role": "assistant", "content": []}  # fmt: skip
        out = self._add_item(item)
        part = (
            {"type": "audio", "transcript": ""}
            if self.plan.modality == "audio"
            else {"type": "text", "text": ""}
        )
        out.append(event("response.content_part.added", **self._ids(), content_index=0, part=part))
        return out

    def _audio_step(self, piece: bytes, words: list[str], first: bool) -> Callable[[], list[ServerEvent]]:
        def step() -> list[ServerEvent]:
            out: list[ServerEvent] = []
            if words:
                delta = ("" if first else " ") + " ".join(words)
                self._written += delta
                out.append(event("response.output_audio_transcript.delta", **self._ids(), content_index=0,
                                 delta=delta, obfuscation=obfuscation()))  # fmt: skip
            ms = len(piece) / bytes_per_ms(self.plan.audio_format["type"])
            self._audio_ms_sent += ms
            if self._open_stored is not None:
                self._open_stored.audio.extend(piece)
                self._open_stored.audio_ms += ms
            out.append(event("response.output_audio.delta", **self._ids(), content_index=0,
                             delta=base64.b64encode(piece).decode()))  # fmt: skip
            return out

        return step

    def _text_step(self, delta: str) -> Callable[[], list[ServerEvent]]:
        def step() -> list[ServerEvent]:
            self._written += delta
            return [event("response.output_text.delta", **self._ids(), content_index=0, delta=delta,
                          obfuscation=obfuscation())]  # fmt: skip

        return step

    def _function_call_step(self, call: FunctionCallStep) -> Callable[[], list[ServerEvent]]:
        def step() -> list[ServerEvent]:
            call_id = new_id("call_", 16)
            item = {"id": new_id("item_"), "type": "function_call", "object": "realtime.item",
                    "status": "in_progress", "call_id": call_id, "name": call.name, "arguments": ""}  # fmt: skip
            out = self._add_item(item)
            ids = self._ids()
            third = max(1, len(call.arguments) // 3)
            for start in range(0, len(call.arguments), third):
                delta = call.arguments[start : start + third]
                self._arguments_sent += delta
                out.append(
                    event("response.function_call_arguments.delta", **ids, call_id=call_id, delta=delta)
                )
            out.append(event("response.function_call_arguments.done", **ids, call_id=call_id, name=call.name,
                             arguments=call.arguments))  # fmt: skip
            item["arguments"] = call.arguments
            out.extend(self._close_open_item("completed"))
            return out

        return step

    def _close_open_item(self, status: str) -> list[ServerEvent]:
        item = self._open_item
        assert item is not None
        ids = self._ids()
        out: list[ServerEvent] = []
        if item["type"] == "message":
            if self.plan.modality == "audio":
                out.append(event("response.output_audio.done", **ids, content_index=0))
                out.append(event("response.output_audio_transcript.done", **ids, content_index=0,
                                 transcript=self._written))  # fmt: skip
                part = {"type": "audio", "transcript": self._written}
                item["content"] = [{"type": "output_audio", "transcript": self._written}]
            else:
                out.append(event("response.output_text.done", **ids, content_index=0, text=self._written))
                part = {"type": "text", "text": self._written}
                item["content"] = [{"type": "output_text", "text": self._written}]
            out.append(event("response.content_part.done", **ids, content_index=0, part=part))
        item["status"] = status
        if self._conversation is not None:
            out.append(
                event("conversation.item.done", previous_item_id=self._open_previous, item=public_item(item))
            )
        out.append(event("response.output_item.done", response_id=self.id, output_index=len(self._output),
                         item=public_item(item)))  # fmt: skip
        self._output.append(public_item(item))
        self._open_item = None
        self._open_stored = None
        return out

    def _finish(self, status: str, details: dict[str, Any] | None) -> list[ServerEvent]:
        self.done = True
        self.usage = usage(
            self._input_tokens,
            self._cached_tokens,
            text_tokens(self._written) + text_tokens(self._arguments_sent),
            self._audio_ms_sent,
        )
        response = self._response(status)
        response["status_details"] = details
        response["output"] = self._output
        response["usage"] = self.usage
        return [event("response.done", response=response)]

    def _response(self, status: str) -> dict[str, Any]:
        plan = self.plan
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": None,
            "output": [],
            "conversation_id": plan.conversation_id,
            "output_modalities": [plan.modality],
            "max_output_tokens": plan.max_output_tokens,
            "audio": {"output": {"format": plan.audio_format, "voice": plan.voice}},
            "usage": None,
            "metadata": plan.metadata,
        }
