"""The simulated model's voice: espeak-ng speech when installed, a tone otherwise, cached by text."""

from __future__ import annotations

from collections import OrderedDict

from voicefleet.audio.pcm import silence, tone
from voicefleet.audio.speech import espeak_available, synthesize

_CACHE_ENTRIES = 256
_TONE_MS_PER_CHARACTER = 60


class ReplyVoice:
    """Text -> PCM16 24 kHz. Scripted replies repeat, so a small LRU cache makes synthesis a one-off cost."""

    def __init__(self, *, use_speech: bool = True) -> None:
        self.uses_speech = use_speech and espeak_available()
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def __call__(self, text: str) -> bytes:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        pcm = synthesize(text) if self.uses_speech else self._tone_for(text)
        self._cache[text] = pcm
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return pcm

    @staticmethod
    def _tone_for(text: str) -> bytes:
        # One beep per word with short gaps, so the audio has the rhythm (and length) of speech.
        words = text.split() or [""]
        per_word = max(120, _TONE_MS_PER_CHARACTER * len(text) // len(words))
        return b"".join(
            tone(per_word, frequency=330.0 + 40.0 * (i % 3)) + silence(60) for i in range(len(words))
        )
