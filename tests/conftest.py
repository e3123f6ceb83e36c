"""Fixtures shared by every test folder: real processes on loopback, speech made with espeak-ng."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the test session (never the machine's own); yields its URL."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def question_pcm() -> bytes:
    """'What is the weather in Paris?' as PCM16 24 kHz, with silence after so server VAD ends the turn."""
    from voicefleet.audio.speech import make_speech_pcm

    return make_speech_pcm("What is the weather in Paris?", lead_silence_ms=300, tail_silence_ms=1200)


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path
