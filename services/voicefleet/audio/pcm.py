"""PCM16 (signed 16-bit little-endian mono) helpers; the Realtime API's `audio/pcm` is this at 24 kHz."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

REALTIME_RATE = 24_000
BYTES_PER_MS_24K = 48  # 24 samples per ms, 2 bytes each
G711_RATE = 8_000
BYTES_PER_MS_G711 = 8  # 8 samples per ms, 1 byte each

Int16Array = npt.NDArray[np.int16]


def to_array(pcm: bytes) -> Int16Array:
    """Samples of a PCM16 LE byte string (an odd trailing byte is dropped, as a decoder would)."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.int16)


def to_bytes(samples: npt.NDArray[np.generic]) -> bytes:
    """PCM16 LE bytes of samples; floats are taken as -1..1 and clipped, integers are clipped to int16."""
    array = np.asarray(samples)
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.round(array * 32767.0), -32768, 32767)
    else:
        array = np.clip(array, -32768, 32767)
    return array.astype("<i2").tobytes()


def duration_ms(pcm: bytes, rate: int = REALTIME_RATE) -> float:
    """Duration of PCM16 mono bytes; at 24 kHz this is bytes / 48."""
    return len(pcm) / (2 * rate / 1000)


def silence(ms: int, rate: int = REALTIME_RATE) -> bytes:
    return bytes(2 * (rate * ms // 1000))


def chunks(data: bytes, size: int) -> list[bytes]:
    """Split into pieces of `size` bytes (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def tone(ms: int, *, frequency: float = 440.0, amplitude: float = 0.3, rate: int = REALTIME_RATE) -> bytes:
    """A sine tone; the stand-in for speech where no synthesizer is installed."""
    t = np.arange(rate * ms // 1000, dtype=np.float64) / rate
    return to_bytes(amplitude * np.sin(2 * np.pi * frequency * t))


def rms_dbfs(pcm: bytes) -> float:
    """Loudness of a PCM16 frame in dB relative to full scale (-inf-safe: silence gives -120)."""
    samples = to_array(pcm).astype(np.float64)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20.0 * float(np.log10(max(rms, 1e-6) / 32768.0))
