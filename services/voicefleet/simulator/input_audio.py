"""The input audio buffer and server-side turn detection on the audio actually appended.

Offsets are milliseconds of all audio appended in this session (what `audio_start_ms`/`audio_end_ms` mean on
the wire), not wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicefleet.audio.formats import PCM, bytes_per_ms, decode, sample_rate
from voicefleet.audio.vad import FrameClassifier, SpeechStart, TurnSegmenter

# Silence kept before speech while idle: enough for the largest prefix padding anyone sets in practice.
_IDLE_KEEP_MARGIN_MS = 500
_SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 250}


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class VadSettings:
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int

    @classmethod
    def from_turn_detection(cls, config: dict[str, Any]) -> VadSettings:
        if config.get("type") == "semantic_vad":
            # No language model here: eagerness becomes a silence length, bounded like OpenAI's timeouts.
            silence = _SEMANTIC_SILENCE_MS.get(str(config.get("eagerness", "auto")), 500)
            return cls(0.5, 300, silence)
        return cls(
            float(config.get("threshold", 0.5)),
            int(config.get("prefix_padding_ms", 300)),
            int(config.get("silence_duration_ms", 200)),
        )


class InputAudioBuffer:
    def __init__(self) -> None:
        self.format_type = PCM
        self._data = bytearray()
        self._start_ms = 0.0  # session offset of _data[0]
        self._vad: VadSettings | None = None
        self._classifier: FrameClassifier | None = None
        self._segmenter: TurnSegmenter | None = None
        self._vad_origin_ms = 0.0
        self.speech_start_ms: int | None = None

    @property
    def total_ms(self) -> float:
        """Audio appended in this session so far."""
        return self._start_ms + len(self._data) / bytes_per_ms(self.format_type)

    @property
    def buffered_ms(self) -> float:
        return len(self._data) / bytes_per_ms(self.format_type)

    def configure(self, format_type: str, turn_detection: dict[str, Any] | None) -> None:
        """Apply the session's input settings; the detector restarts (as after a commit) when they change."""
        vad = VadSettings.from_turn_detection(turn_detection) if turn_detection else None
        format_changed = format_type != self.format_type
        if format_changed:
            self._start_ms = self.total_ms
            self._data.clear()
            self.format_type = format_type
        if format_changed or vad != self._vad or (vad and self._classifier is None):
            self._vad = vad
            self._restart_detector()

    def _restart_detector(self) -> None:
        self.speech_start_ms = None
        if self._vad is None:
            self._classifier = self._segmenter = None
            return
        self._vad_origin_ms = self.total_ms
        self._classifier = FrameClassifier(sample_rate(self.format_type), self._vad.threshold)
        self._segmenter = TurnSegmenter(self._vad.silence_duration_ms)

    def append(self, data: bytes) -> list[SpeechStarted | SpeechStopped]:
        self._data.extend(data)
        if self._classifier is None or self._segmenter is None or self._vad is None:
            return []
        found: list[SpeechStarted | SpeechStopped] = []
        for turn in self._segmenter.feed(self._classifier.feed(decode(self.format_type, data))):
            if isinstance(turn, SpeechStart):
                onset = self._vad_origin_ms + turn.onset_ms
                start = int(max(self._start_ms, onset - self._vad.prefix_padding_ms))
                self.speech_start_ms = start
                found.append(SpeechStarted(start))
            else:
                found.append(SpeechStopped(int(self._vad_origin_ms + turn.end_ms)))
        if not self._segmenter.speaking:
            self._trim_idle(self._vad.prefix_padding_ms + _IDLE_KEEP_MARGIN_MS)
        return found

    def _trim_idle(self, keep_ms: int) -> None:
        excess = len(self._data) - keep_ms * bytes_per_ms(self.format_type)
        if excess > 0 and self.speech_start_ms is None:
            excess -= excess % 2
            del self._data[:excess]
            self._start_ms += excess / bytes_per_ms(self.format_type)

    def take(self, start_ms: float | None = None, end_ms: float | None = None) -> bytes:
        """Remove and return the audio of a commit: [start_ms, end_ms) or the whole buffer."""
        per_ms = bytes_per_ms(self.format_type)
        end = len(self._data) if end_ms is None else int(max(0.0, end_ms - self._start_ms) * per_ms)
        begin = 0 if start_ms is None else int(max(0.0, start_ms - self._start_ms) * per_ms)
        end -= end % 2 if per_ms % 2 == 0 else 0
        begin -= begin % 2 if per_ms % 2 == 0 else 0
        audio = bytes(self._data[begin:end])
        del self._data[:end]
        self._start_ms += end / per_ms
        self.speech_start_ms = None
        return audio

    def clear(self) -> None:
        self._start_ms = self.total_ms
        self._data.clear()
        self._restart_detector()

    def committed_manually(self) -> None:
        """A client commit ends any turn the detector was following."""
        self._restart_detector()
