"""User turns from input audio: the `input_audio_buffer.*` handlers, VAD turn events, the idle timeout, and the
transcription of each committed item.

The session owns responses. This side tells it when the user starts speaking (interrupt) and when a turn is
committed (respond) through `Responder`, and hears from it when a response is done, which is where the idle
timeout starts counting (REALTIME_PROTOCOL.md §5.3).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Final, Protocol

from voicefleet.audio.formats import bytes_per_ms
from voicefleet.simulator.conversation import Conversation, StoredItem, public_item
from voicefleet.simulator.input_audio import InputAudioBuffer, SpeechStarted
from voicefleet.simulator.protocol import ProtocolError, ServerEvent, event, new_id
from voicefleet.simulator.scenario import ScriptCursor, TemplateValues
from voicefleet.simulator.transcription import InputTranscriber, placeholder_transcript

MIN_COMMIT_MS: Final = 100


class Responder(Protocol):
    """What input turns need from the session's response side."""

    def response_active(self) -> bool: ...

    def interrupt(self, now: float) -> None:
        """Cancel the running response because the user started speaking (`turn_detected`)."""

    def respond(self, now: float) -> None:
        """Start a response in the default conversation."""


class InputTurns:
    def __init__(
        self,
        conversation: Conversation,
        script: ScriptCursor,
        template: TemplateValues,
        emit: Callable[[ServerEvent], None],
        responder: Responder,
    ) -> None:
        self.buffer = InputAudioBuffer()
        self.transcriber = InputTranscriber(conversation)
        self._conversation = conversation
        self._script = script
        self._template = template
        self._emit = emit
        self._responder = responder
        self._turn_detection: dict[str, Any] | None = None
        self._transcription: dict[str, Any] | None = None
        self._pending_user_item: str | None = None
        """Id of the user item being spoken (set at speech_started): while set, the user is not idle."""
        self._idle_from: float | None = None
        """When the last response's audio has finished playing on the client; None = no idle timer running."""
        self._idle_audio_ms = 0.0
        """Input audio offset when that response was done: the earliest `audio_start_ms` of a timeout."""

    def configure(self, audio_input: dict[str, Any]) -> None:
        """Apply the session's `audio.input` (after `session.created` and every accepted `session.update`)."""
        self._turn_detection = audio_input["turn_detection"]
        self._transcription = audio_input["transcription"]
        self.buffer.configure(audio_input["format"]["type"], self._turn_detection)

    # ---- client events -----------------------------------------------------------------------------------
    def append(self, data: dict[str, Any], now: float) -> None:
        audio = data.get("audio")
        try:
            if not isinstance(audio, str):
                raise ValueError
            chunk = base64.b64decode(audio, validate=True)
        except (ValueError, binascii.Error):
            raise ProtocolError(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio bytes (mono PCM16 at 24kHz) but got an invalid value.",
                "audio",
            ) from None
        for turn in self.buffer.append(chunk):
            if isinstance(turn, SpeechStarted):
                self._speech_started(turn.audio_start_ms, now)
            else:
                self._speech_stopped(turn.audio_end_ms, now)

    def commit(self, data: dict[str, Any], now: float) -> None:
        buffered = self.buffer.buffered_ms
        if buffered < MIN_COMMIT_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {buffered:.2f}ms of audio.",
            )
        item_id = self._pending_user_item or new_id("item_")
        self._pending_user_item = None
        self._idle_from = None
        audio = self.buffer.take()
        self.buffer.committed_manually()
        self._commit_user_audio(item_id, audio, now)

    def clear(self, data: dict[str, Any], now: float) -> None:
        self.buffer.clear()
        self._pending_user_item = None
        self._emit(event("input_audio_buffer.cleared"))

    # ---- the response side -------------------------------------------------------------------------------
    def response_started(self) -> None:
        self._idle_from = None

    def response_finished(self, now: float, audio_ms: float) -> None:
        """Start the idle timer: OpenAI counts from `response.done` plus the playback time of its audio."""
        if self._pending_user_item is None:  # a user who is speaking is not idle
            self._idle_from = now + audio_ms / 1000.0
            self._idle_audio_ms = self.buffer.total_ms

    # ---- time --------------------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        candidates = [t for t in (self.transcriber.next_due(), self._idle_deadline()) if t is not None]
        return min(candidates, default=None)

    def pump(self, now: float) -> None:
        """Emit what is due: transcription events, then the idle timeout if it has run out."""
        for pending in self.transcriber.due(now):
            self._emit(pending)
        deadline = self._idle_deadline()
        if deadline is not None and now >= deadline:
            self._idle_timeout(now)

    # ---- turns -------------------------------------------------------------------------------------------
    def _speech_started(self, audio_start_ms: int, now: float) -> None:
        self._pending_user_item = new_id("item_")
        self._idle_from = None
        self._emit(event("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms,
                         item_id=self._pending_user_item))  # fmt: skip
        if self._responder.response_active() and (self._turn_detection or {}).get("interrupt_response", True):
            self._responder.interrupt(now)

    def _speech_stopped(self, audio_end_ms: int, now: float) -> None:
        item_id = self._pending_user_item or new_id("item_")
        self._pending_user_item = None
        self._emit(event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id))
        audio = self.buffer.take(None, audio_end_ms)
        self._commit_user_audio(item_id, audio, now)
        if (self._turn_detection or {}).get(
            "create_response", True
        ) and not self._responder.response_active():
            self._responder.respond(now)

    def _idle_deadline(self) -> float | None:
        detection = self._turn_detection
        if self._idle_from is None or detection is None or detection.get("type") != "server_vad":
            return None
        timeout_ms = detection.get("idle_timeout_ms")
        return None if timeout_ms is None else self._idle_from + timeout_ms / 1000.0

    def _idle_timeout(self, now: float) -> None:
        """No speech for `idle_timeout_ms`: commit the silent audio as a user item and respond to it."""
        timeout_ms = (self._turn_detection or {}).get("idle_timeout_ms") or 0
        self._idle_from = None
        item_id = new_id("item_")
        end_ms = self.buffer.total_ms
        start_ms = max(self._idle_audio_ms, end_ms - timeout_ms)
        self._emit(event("input_audio_buffer.timeout_triggered", item_id=item_id,
                         audio_start_ms=int(start_ms), audio_end_ms=int(end_ms)))  # fmt: skip
        # Nobody spoke, so the transcript is empty (not the scenario's scripted words, kept for real speech).
        self._commit_user_audio(item_id, self.buffer.take(start_ms, end_ms), now, words="")
        if not self._responder.response_active():
            self._responder.respond(now)

    def _commit_user_audio(self, item_id: str, audio: bytes, now: float, words: str | None = None) -> None:
        item = {"id": item_id, "type": "message", "object": "realtime.item", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}]}  # fmt: skip
        audio_ms = len(audio) / bytes_per_ms(self.buffer.format_type)
        previous = self._conversation.insert(StoredItem(item=item, audio=bytearray(audio), audio_ms=audio_ms))
        self._emit(event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id))
        self._emit(event("conversation.item.added", previous_item_id=previous, item=public_item(item)))
        self._emit(event("conversation.item.done", previous_item_id=previous, item=public_item(item)))
        if words is None:
            words = self._script.hear_user() or placeholder_transcript(audio_ms)
        if words:
            self._template.user_text = words  # what the simulated model understood, transcribed or not
        if self._transcription is not None:
            self.transcriber.transcribe(item_id, words, audio_ms, self._transcription, now)
