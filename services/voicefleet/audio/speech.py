"""Speech from text with espeak-ng: replies of the simulator and deterministic speech fixtures for tests.

espeak-ng writes a 22,050 Hz WAV; it is converted to PCM16 24 kHz mono. Fixtures go through `sox -D` (no
dither) so the bytes are identical run to run, and are cached on disk so a test suite synthesizes each once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from voicefleet.audio.pcm import REALTIME_RATE, silence
from voicefleet.audio.resample import resample
from voicefleet.audio.wav import read_wav

DEFAULT_VOICE = "en-us"
DEFAULT_WORDS_PER_MINUTE = 170
_TIMEOUT_S = 30


class SpeechUnavailableError(RuntimeError):
    """espeak-ng (or sox, for fixtures) is not installed."""


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak_wav(text: str, voice: str, words_per_minute: int) -> bytes:
    if not espeak_available():
        raise SpeechUnavailableError("espeak-ng is not installed")
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=_TIMEOUT_S,
    )
    return result.stdout


def synthesize(
    text: str, *, voice: str = DEFAULT_VOICE, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE
) -> bytes:
    """PCM16 24 kHz mono speech of `text` (espeak-ng, resampled with soxr)."""
    pcm, rate = read_wav(_espeak_wav(text, voice, words_per_minute))
    return resample(pcm, rate, REALTIME_RATE)


def _fixture_pcm(text: str, voice: str) -> bytes:
    wav = _espeak_wav(text, voice, DEFAULT_WORDS_PER_MINUTE)
    if shutil.which("sox") is None:
        pcm, rate = read_wav(wav)
        return resample(pcm, rate, REALTIME_RATE)
    raw = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(REALTIME_RATE), "-"]
    result = subprocess.run(
        ["sox", "-D", "-t", "wav", "-", *raw], input=wav, check=True, capture_output=True, timeout=_TIMEOUT_S
    )
    return result.stdout


def make_speech_pcm(
    text: str,
    *,
    lead_silence_ms: int = 0,
    tail_silence_ms: int = 0,
    voice: str = DEFAULT_VOICE,
    cache_dir: str | Path | None = None,
) -> bytes:
    """Deterministic PCM16 24 kHz mono speech of `text` between two stretches of digital silence.

    Cached by text and voice under the system temp dir (or `cache_dir`); the padding is added after the cache,
    so one synthesis serves every padding a test asks for.
    """
    directory = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "voicefleet-speech"
    directory.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:32]
    path = directory / f"{key}.pcm"
    if path.exists():
        speech = path.read_bytes()
    else:
        speech = _fixture_pcm(text, voice)
        # Write then rename, so concurrent test processes never read a half-written file.
        handle, temp_name = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(speech)
        os.replace(temp_name, path)
    return silence(lead_silence_ms) + speech + silence(tail_silence_ms)
