"""The Realtime API's audio formats (`audio/pcm` 24 kHz, `audio/pcmu`, `audio/pcma` 8 kHz) to and from PCM16."""

from __future__ import annotations

from typing import Final

from voicefleet.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voicefleet.audio.pcm import BYTES_PER_MS_24K, BYTES_PER_MS_G711, G711_RATE, REALTIME_RATE
from voicefleet.audio.resample import resample

PCM: Final = "audio/pcm"
PCMU: Final = "audio/pcmu"
PCMA: Final = "audio/pcma"
FORMAT_TYPES: Final = (PCM, PCMU, PCMA)


def sample_rate(format_type: str) -> int:
    return REALTIME_RATE if format_type == PCM else G711_RATE


def bytes_per_ms(format_type: str) -> int:
    """48 for PCM16 at 24 kHz, 8 for G.711: duration_ms = len(data) / bytes_per_ms."""
    return BYTES_PER_MS_24K if format_type == PCM else BYTES_PER_MS_G711


def duration_ms(format_type: str, data: bytes) -> float:
    return len(data) / bytes_per_ms(format_type)


def decode(format_type: str, data: bytes) -> bytes:
    """Wire bytes -> PCM16 at the format's own rate (24 kHz for pcm, 8 kHz for G.711)."""
    if format_type == PCMU:
        return ulaw_decode(data)
    if format_type == PCMA:
        return alaw_decode(data)
    return data


def encode_from_24k(format_type: str, pcm_24k: bytes) -> bytes:
    """PCM16 at 24 kHz -> wire bytes of the format (G.711 is resampled to 8 kHz first)."""
    if format_type == PCM:
        return pcm_24k
    narrow = resample(pcm_24k, REALTIME_RATE, G711_RATE)
    return ulaw_encode(narrow) if format_type == PCMU else alaw_encode(narrow)
