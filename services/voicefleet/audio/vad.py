"""Voice activity detection on real audio: a 20 ms frame classifier (WebRTC VAD) and a turn segmenter.

The classifier works at the input's own rate family: 24 kHz PCM is resampled to 16 kHz, G.711 is used at
8 kHz directly. A frame counts as speech when WebRTC VAD says so *and* it is louder than a floor that rises
with `threshold`, which is how the Realtime API's threshold ("higher needs louder audio") is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass

import webrtcvad

from voicefleet.audio.pcm import rms_dbfs
from voicefleet.audio.resample import StreamResampler

FRAME_MS = 20
MIN_SPEECH_MS = 60  # a click or a breath shorter than this does not start a turn


def aggressiveness(threshold: float) -> int:
    """WebRTC VAD mode 0..3 for a Realtime threshold 0..1 (0.5, the default, gives mode 2)."""
    return max(0, min(3, int(threshold * 4)))


def loudness_floor_dbfs(threshold: float) -> float:
    """Frames quieter than this are never speech: -65 dBFS at threshold 0, -45 at 0.5, -25 at 1."""
    return -65.0 + 40.0 * threshold


class FrameClassifier:
    """Turns a stream of PCM16 (at 24 kHz or 8 kHz) into one speech/non-speech decision per 20 ms."""

    def __init__(self, input_rate: int, threshold: float) -> None:
        self._vad_rate = 16_000 if input_rate == 24_000 else input_rate
        self._resampler = StreamResampler(input_rate, self._vad_rate)
        self._vad = webrtcvad.Vad(aggressiveness(threshold))
        self._floor = loudness_floor_dbfs(threshold)
        self._frame_bytes = 2 * self._vad_rate * FRAME_MS // 1000
        self._pending = b""

    def feed(self, pcm: bytes) -> list[bool]:
        self._pending += self._resampler.feed(pcm)
        decisions: list[bool] = []
        while len(self._pending) >= self._frame_bytes:
            frame = self._pending[: self._frame_bytes]
            self._pending = self._pending[self._frame_bytes :]
            loud = rms_dbfs(frame) > self._floor
            decisions.append(loud and bool(self._vad.is_speech(frame, self._vad_rate)))
        return decisions


@dataclass(frozen=True, slots=True)
class SpeechStart:
    onset_ms: int
    """Start of the first speech frame, in ms of the audio stream (prefix padding not yet subtracted)."""


@dataclass(frozen=True, slots=True)
class SpeechStop:
    end_ms: int
    """The moment the required silence was reached (last speech + silence_duration_ms), in ms of the stream."""


class TurnSegmenter:
    """Finds turns in a stream of frame decisions: speech starts after MIN_SPEECH_MS of speech, stops after
    `silence_duration_ms` of non-speech."""

    def __init__(self, silence_duration_ms: int) -> None:
        self.silence_duration_ms = silence_duration_ms
        self.speaking = False
        self._frames_seen = 0
        self._run_start = -1
        self._run_frames = 0
        self._silent_frames = 0

    def feed(self, decisions: list[bool]) -> list[SpeechStart | SpeechStop]:
        events: list[SpeechStart | SpeechStop] = []
        for is_speech in decisions:
            index = self._frames_seen
            self._frames_seen += 1
            if not self.speaking:
                if is_speech:
                    if self._run_frames == 0:
                        self._run_start = index
                    self._run_frames += 1
                    if self._run_frames * FRAME_MS >= MIN_SPEECH_MS:
                        self.speaking = True
                        self._silent_frames = 0
                        events.append(SpeechStart(self._run_start * FRAME_MS))
                else:
                    self._run_frames = 0
            elif is_speech:
                self._silent_frames = 0
            else:
                self._silent_frames += 1
                if self._silent_frames * FRAME_MS >= self.silence_duration_ms:
                    self.speaking = False
                    self._run_frames = 0
                    events.append(SpeechStop((index + 1) * FRAME_MS))
        return events
