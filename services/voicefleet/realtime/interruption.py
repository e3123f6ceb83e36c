"""Barge-in: when the user talks over the assistant, cut the assistant's items at what the user heard.

On `input_audio_buffer.speech_started` with assistant audio still unplayed, the worker makes sure the response is
cancelled (the server does it itself when `interrupt_response` is on; otherwise the worker sends
`response.cancel`) and truncates each unheard item at the heard position. A client that reports playback
(`fleet.playback`) is truncated for at once. A client that does not may truncate by itself, as OpenAI's own
examples do: the worker then waits a short grace period for that truncate before sending its own estimate, and
never sends a second truncate for the same item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicefleet.realtime.events import INTERNAL_EVENT_PREFIX, new_event_id
from voicefleet.realtime.playback import PlaybackTracker


@dataclass(slots=True)
class PendingTruncate:
    item_id: str
    audio_end_ms: int
    due_at: float


def truncate_event(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "event_id": new_event_id(INTERNAL_EVENT_PREFIX),
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": audio_end_ms,
    }


def cancel_event(response_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel", "event_id": new_event_id(INTERNAL_EVENT_PREFIX)}
    if response_id:
        event["response_id"] = response_id
    return event


class BargeIn:
    """Decides cancels and truncates; the session sends what it returns."""

    def __init__(self, tracker: PlaybackTracker, client_truncate_grace_s: float = 0.25) -> None:
        self.tracker = tracker
        self.grace_s = client_truncate_grace_s
        self.pending: dict[str, PendingTruncate] = {}
        self.truncated: set[str] = set()
        self.client_truncates = False  # this client has truncated by itself before

    def speech_started(
        self, now: float, active_response: str | None, server_cancels: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        """Events to send upstream now, and whether this was an interruption."""
        plan = [(i, ms) for i, ms in self.tracker.truncation_plan(now) if i not in self.truncated]
        if not plan and active_response is None:
            return [], False
        events: list[dict[str, Any]] = []
        if active_response is not None and not server_cancels:
            events.append(cancel_event(active_response))
        for item_id, audio_end_ms in plan:
            if self.tracker.acks_seen or self.grace_s <= 0:
                events.append(self._truncate(item_id, audio_end_ms))
            else:
                # Fixed now, at the moment the user started talking; sent later only if the client stays silent.
                self.pending[item_id] = PendingTruncate(item_id, audio_end_ms, now + self.grace_s)
        self.tracker.clear(now)
        return events, True

    def client_truncate(self, item_id: str) -> bool:
        """The client truncates by itself. True to forward it; False when the worker already truncated it."""
        self.client_truncates = True
        self.pending.pop(item_id, None)
        if item_id in self.truncated:
            return False
        self.truncated.add(item_id)
        return True

    def due(self, now: float) -> list[dict[str, Any]]:
        ready = [p for p in self.pending.values() if p.due_at <= now]
        for p in ready:
            del self.pending[p.item_id]
        return [self._truncate(p.item_id, p.audio_end_ms) for p in ready]

    def next_deadline(self) -> float | None:
        return min((p.due_at for p in self.pending.values()), default=None)

    def _truncate(self, item_id: str, audio_end_ms: int) -> dict[str, Any]:
        self.truncated.add(item_id)
        return truncate_event(item_id, audio_end_ms)
