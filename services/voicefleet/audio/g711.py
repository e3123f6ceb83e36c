"""G.711 µ-law and A-law (ITU-T G.711), vectorised with numpy: the telephony formats audio/pcmu and audio/pcma.

The segment arithmetic follows the reference algorithm in the recommendation: 16-bit samples are reduced to
14 bits (µ-law) or 13 bits (A-law), the segment is the position of the highest set bit, four mantissa bits follow.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voicefleet.audio.pcm import to_array, to_bytes

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEGMENT_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEGMENT_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)

IntArray = npt.NDArray[np.int32]


def _ulaw_encode(samples: IntArray) -> IntArray:
    value = samples >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_END, value, side="left").astype(np.int32)
    code = (np.minimum(segment, 7) << 4) | ((value >> (np.minimum(segment, 7) + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.int32)


def _ulaw_decode(codes: IntArray) -> IntArray:
    inverted = ~codes & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + _ULAW_BIAS) << ((inverted & 0x70) >> 4)
    return np.where(inverted & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int32)


def _alaw_encode(samples: IntArray) -> IntArray:
    value = samples >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_END, value, side="left").astype(np.int32)
    clamped = np.minimum(segment, 7)
    mantissa = np.where(clamped < 2, (value >> 1) & 0x0F, (value >> clamped) & 0x0F)
    code = np.where(segment >= 8, 0x7F, (clamped << 4) | mantissa)
    return (code ^ mask).astype(np.int32)


def _alaw_decode(codes: IntArray) -> IntArray:
    value = codes ^ 0x55
    magnitude = (value & 0x0F) << 4
    segment = (value & 0x70) >> 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(value & 0x80, magnitude, -magnitude).astype(np.int32)


def ulaw_encode(pcm: bytes) -> bytes:
    """PCM16 bytes -> µ-law bytes (one per sample); the sample rate is unchanged (G.711 is 8 kHz)."""
    return _ulaw_encode(to_array(pcm).astype(np.int32)).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> bytes:
    return to_bytes(_ulaw_decode(np.frombuffer(data, dtype=np.uint8).astype(np.int32)))


def alaw_encode(pcm: bytes) -> bytes:
    """PCM16 bytes -> A-law bytes (one per sample)."""
    return _alaw_encode(to_array(pcm).astype(np.int32)).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> bytes:
    return to_bytes(_alaw_decode(np.frombuffer(data, dtype=np.uint8).astype(np.int32)))
