"""WAV read/write for PCM16 mono, using the standard library's wave module."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from voicefleet.audio.pcm import REALTIME_RATE, to_array, to_bytes


def read_wav(source: str | Path | bytes) -> tuple[bytes, int]:
    """(PCM16 mono bytes, sample rate) of a PCM16 WAV; stereo is averaged down to mono."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM WAV, got {8 * handle.getsampwidth()}-bit")
        channels = handle.getnchannels()
        rate = handle.getframerate()
        frames = handle.readframes(handle.getnframes())
    if channels > 1:
        samples = to_array(frames).reshape(-1, channels).mean(axis=1)
        frames = to_bytes(samples.round().astype("int32"))
    return frames, rate


def wav_bytes(pcm: bytes, rate: int = REALTIME_RATE) -> bytes:
    """A complete WAV file (PCM16 mono) in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm)
    return buffer.getvalue()


def write_wav(path: str | Path, pcm: bytes, rate: int = REALTIME_RATE) -> None:
    Path(path).write_bytes(wav_bytes(pcm, rate))
