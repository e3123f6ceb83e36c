"""Sample-rate conversion with soxr (high quality, C speed), one-shot or streaming across chunks."""

from __future__ import annotations

import numpy as np
import soxr

from voicefleet.audio.pcm import to_array, to_bytes


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(to_array(pcm), from_rate, to_rate)
    return to_bytes(np.asarray(out))


class StreamResampler:
    """Resamples a stream chunk by chunk without clicks at chunk edges (soxr keeps the filter state)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16")

    def feed(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self.from_rate == self.to_rate:
            return pcm
        out = self._stream.resample_chunk(to_array(pcm), last=last)
        return to_bytes(np.asarray(out))
