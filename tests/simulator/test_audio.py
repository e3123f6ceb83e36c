"""Audio helpers: G.711 round trips, WAV I/O, resampling, VAD on real speech, latency quantiles."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from voicefleet.audio import g711
from voicefleet.audio.pcm import chunks, duration_ms, to_array, tone
from voicefleet.audio.resample import resample
from voicefleet.audio.speech import make_speech_pcm
from voicefleet.audio.vad import FrameClassifier, SpeechStart, SpeechStop, TurnSegmenter
from voicefleet.audio.wav import read_wav, wav_bytes
from voicefleet.simulator.latency import PROFILES

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.mark.parametrize(
    ("encode", "decode"), [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)]
)
def test_g711_round_trip(encode, decode) -> None:  # type: ignore[no-untyped-def]
    codes = bytes(range(256))
    assert decode(encode(decode(codes))) == decode(codes)  # every code's value survives a round trip
    original = to_array(tone(200, amplitude=0.5)).astype(np.int32)
    restored = to_array(decode(encode(tone(200, amplitude=0.5)))).astype(np.int32)
    # G.711 keeps ~13 bits of precision: the error stays within a few percent of the signal.
    assert np.max(np.abs(original - restored)) < 0.04 * np.max(np.abs(original)) + 16


def test_wav_round_trip_and_duration() -> None:
    pcm = tone(250)
    assert duration_ms(pcm) == 250
    assert read_wav(wav_bytes(pcm)) == (pcm, 24000)
    assert abs(duration_ms(resample(pcm, 24000, 16000), 16000) - 250) < 2


@needs_espeak
def test_speech_fixture_is_deterministic_and_padded() -> None:
    first = make_speech_pcm("Testing one two three", lead_silence_ms=200, tail_silence_ms=100)
    again = make_speech_pcm("Testing one two three", lead_silence_ms=200, tail_silence_ms=100)
    assert first == again
    assert first[: 200 * 48] == bytes(200 * 48) and first[-100 * 48 :] == bytes(100 * 48)


@needs_espeak
@pytest.mark.parametrize("rate", [24000, 8000])
def test_vad_finds_speech_between_known_silences(rate: int) -> None:
    speech = make_speech_pcm("What is the weather like in Paris today?")
    padded = bytes(800 * 48) + speech + bytes(1000 * 48)
    if rate == 8000:
        padded = g711.ulaw_decode(g711.ulaw_encode(resample(padded, 24000, 8000)))
    classifier, segmenter = FrameClassifier(rate, 0.5), TurnSegmenter(500)
    turns: list[SpeechStart | SpeechStop] = []
    for chunk in chunks(padded, 2 * rate // 50):
        turns += segmenter.feed(classifier.feed(chunk))
    assert len(turns) == 2
    start, stop = turns
    assert isinstance(start, SpeechStart) and isinstance(stop, SpeechStop)
    assert 760 <= start.onset_ms <= 900
    speech_end = 800 + duration_ms(speech)
    assert speech_end <= stop.end_ms <= speech_end + 500 + 120


def test_vad_threshold_makes_quiet_audio_silence() -> None:
    quiet = tone(600, amplitude=0.01, frequency=300)
    assert any(FrameClassifier(24000, 0.0).feed(quiet))
    assert not any(FrameClassifier(24000, 1.0).feed(quiet))


@pytest.mark.parametrize("name", ["us-east", "eu-west", "ap-tokyo"])
def test_latency_profile_reproduces_its_quantiles(name: str) -> None:
    profile = PROFILES[name]
    rng = random.Random(1234)
    samples = np.array([profile.sample_ms(rng) for _ in range(40_000)])
    for q, expected in ((50, profile.p50_ms), (95, profile.p95_ms), (99, profile.p99_ms)):
        assert abs(np.percentile(samples, q) - expected) <= 0.04 * expected, (q, expected)
    assert PROFILES["none"].sample_ms(rng) == 0
