"""Input audio transcription as OpenAI runs it beside the model (REALTIME_PROTOCOL.md §4.2, §4.7).

Each committed user audio item gets `conversation.item.input_audio_transcription.delta` events and then
`.completed`, some time after `input_audio_buffer.committed`, so they often arrive after the response has started.
The simulator has no recogniser: the caller supplies the words (scripted, or a placeholder naming the length).
Workers rebuild a conversation on a fresh upstream session from these transcripts, so every committed item gets
exactly one `completed`, in commit order, and the stored item keeps the transcript for `conversation.item.retrieve`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from voicefleet.simulator.conversation import Conversation
from voicefleet.simulator.protocol import ServerEvent, event, obfuscation
from voicefleet.simulator.usage import transcription_usage

TRANSCRIPTION_DELAY_S: Final = 0.3
"""From commit to the first delta: long enough that transcripts interleave with a fast reply, as on OpenAI."""
DELTA_INTERVAL_S: Final = 0.02
DELTA_EVENT: Final = "conversation.item.input_audio_transcription.delta"
COMPLETED_EVENT: Final = "conversation.item.input_audio_transcription.completed"


def placeholder_transcript(audio_ms: float) -> str:
    """What stands in for recognised words when the scenario scripts none: the audio length, e.g. `[speech 1.4 s]`."""
    return f"[speech {audio_ms / 1000:.1f} s]"


class InputTranscriber:
    """Scheduled transcription events, sans I/O: `transcribe` at commit, `due(now)` when `next_due()` comes."""

    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation
        self._queue: deque[tuple[float, ServerEvent]] = deque()
        self._last_due = float("-inf")

    def transcribe(
        self, item_id: str, transcript: str, audio_ms: float, settings: dict[str, Any], now: float
    ) -> None:
        # Never earlier than the previous item's events: `completed` events come in commit order.
        at = max(now + TRANSCRIPTION_DELAY_S, self._last_due)
        # Silence has no words, so no delta; `completed` still comes, with an empty transcript.
        words = transcript.split(" ") if transcript else []
        for index, word in enumerate(words):
            delta = word if index == 0 else " " + word
            self._queue.append((at, event(DELTA_EVENT, item_id=item_id, content_index=0, delta=delta,
                                          obfuscation=obfuscation())))  # fmt: skip
            at += DELTA_INTERVAL_S
        usage = transcription_usage(audio_ms, str(settings.get("prompt") or ""), transcript)
        completed = event(
            COMPLETED_EVENT, item_id=item_id, content_index=0, transcript=transcript, usage=usage
        )
        self._queue.append((at, completed))
        self._last_due = at

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def due(self, now: float) -> list[ServerEvent]:
        out: list[ServerEvent] = []
        while self._queue and self._queue[0][0] <= now:
            _, pending = self._queue.popleft()
            item_id = pending["item_id"]
            if item_id not in self._conversation:
                # Deleted before its transcript was ready: a transcript for an item that no longer exists
                # would only make a client re-create it when it rebuilds the conversation.
                continue
            if pending["type"] == COMPLETED_EVENT:
                content = self._conversation.get(item_id, "retrieve").item["content"]
                content[0]["transcript"] = pending["transcript"]
            out.append(pending)
        return out
