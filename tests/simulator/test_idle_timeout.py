"""`turn_detection.idle_timeout_ms` (REALTIME_PROTOCOL.md §5.3): counted from `response.done` plus the playback
time of that response's audio; when it runs out, `input_audio_buffer.timeout_triggered`, the silent audio is
committed as a user item and a response is generated. Fake clock throughout."""

from __future__ import annotations

import base64
import shutil
from typing import Any

import pytest

from voicefleet.audio.pcm import chunks, silence
from voicefleet.audio.speech import make_speech_pcm
from voicefleet.simulator.session import Output

from .support import SessionDriver, of_type, step_until, types

TIMEOUT = "input_audio_buffer.timeout_triggered"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def session_with(turn_detection: dict[str, Any], **audio_input: Any) -> SessionDriver:
    driver = SessionDriver()
    driver.advance(0)
    out = driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": turn_detection, **audio_input}}}})  # fmt: skip
    assert types(out) == ["session.updated"], out
    return driver


def reply_audio_ms(out: list[Output]) -> float:
    return sum(len(base64.b64decode(d["delta"])) for d in of_type(out, "response.output_audio.delta")) / 48


def stream_silence(driver: SessionDriver, seconds: float) -> list[Output]:
    """What a phone client does while nobody talks: 100 ms of silence every 100 ms."""
    out: list[Output] = []
    for _ in range(round(seconds * 10)):
        driver.now += 0.1
        out += driver.send({"type": "input_audio_buffer.append", "audio": b64(silence(100))})
    return out


def test_timeout_fires_at_response_done_plus_playback_plus_the_timeout_and_gets_a_response() -> None:
    driver = session_with({"type": "server_vad", "idle_timeout_ms": 5000})
    out = driver.send({"type": "response.create"}) + step_until(driver, "response.done")
    done_at, playback_s = driver.now, reply_audio_ms(out) / 1000
    assert playback_s > 1.0  # the reply is spoken, so playback matters
    assert driver.session.next_deadline() == pytest.approx(done_at + playback_s + 5.0)

    assert TIMEOUT not in types(driver.advance(playback_s + 5.0 - 0.01))
    fired = driver.advance(0.01)
    assert types(fired)[:5] == [TIMEOUT, "input_audio_buffer.committed", "conversation.item.added",
                                "conversation.item.done", "response.created"]  # fmt: skip
    timeout = fired[0]
    assert fired[1]["item_id"] == timeout["item_id"]
    user_item = fired[2]["item"]
    assert (user_item["id"], user_item["role"], user_item["content"][0]["type"]) == (
        timeout["item_id"], "user", "input_audio",
    )  # fmt: skip
    assert timeout["audio_start_ms"] == timeout["audio_end_ms"] == 0  # no audio was ever written
    answer = step_until(driver, "response.done")
    assert of_type(answer, "response.done")[0]["response"]["status"] == "completed"


def test_timeout_marks_the_silent_stretch_of_a_streaming_client_and_transcribes_it_as_empty() -> None:
    driver = session_with(
        {"type": "server_vad", "idle_timeout_ms": 6000}, transcription={"model": "gpt-4o-mini-transcribe"}
    )
    out = stream_silence(driver, 1.0)
    out += driver.send({"type": "response.create"}) + step_until(driver, "response.done")
    playback_s = reply_audio_ms(out) / 1000
    out = stream_silence(driver, playback_s + 6.0 + 0.2)
    (timeout,) = of_type(out, TIMEOUT)
    assert 5900 <= timeout["audio_end_ms"] - timeout["audio_start_ms"] <= 6000
    assert timeout["audio_end_ms"] <= driver.session.turns.buffer.total_ms
    out += stream_silence(driver, 1.0)
    (completed,) = of_type(out, COMPLETED)
    assert completed["item_id"] == timeout["item_id"] and completed["transcript"] == ""
    assert not of_type(out, "conversation.item.input_audio_transcription.delta")  # silence has no words


def test_timeout_is_off_by_default_and_for_semantic_vad() -> None:
    for driver in (session_with({"type": "server_vad"}), session_with({"type": "semantic_vad"})):
        driver.send({"type": "response.create"})
        step_until(driver, "rate_limits.updated")
        assert driver.session.turns.next_due() is None
        assert TIMEOUT not in types(driver.advance(60))


def test_timeout_setting_is_checked() -> None:
    driver = session_with({"type": "server_vad"})
    for value, code in ((4999, "integer_below_min_value"), (30001, "integer_above_max_value"),
                        ("5000", "invalid_type")):  # fmt: skip
        out = driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "idle_timeout_ms": value}}}}})  # fmt: skip
        assert out[0]["error"]["code"] == code
        assert out[0]["error"]["param"] == "session.audio.input.turn_detection.idle_timeout_ms"
    out = driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "idle_timeout_ms": 5000}}}}})  # fmt: skip
    assert out[0]["error"]["code"] == "unknown_parameter"  # server_vad only


def test_turning_the_timeout_off_stops_a_running_timer() -> None:
    driver = session_with({"type": "server_vad", "idle_timeout_ms": 5000})
    driver.send({"type": "response.create"})
    step_until(driver, "rate_limits.updated")
    assert driver.session.turns.next_due() is not None
    driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "idle_timeout_ms": None}}}}})  # fmt: skip
    assert TIMEOUT not in types(driver.advance(60))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_user_speech_restarts_the_count_from_the_next_response() -> None:
    driver = session_with({"type": "server_vad", "idle_timeout_ms": 5000, "silence_duration_ms": 500})
    out = driver.send({"type": "response.create"}) + step_until(driver, "response.done")
    first_deadline = driver.now + reply_audio_ms(out) / 1000 + 5.0
    speech = make_speech_pcm("Sorry, say that again?", lead_silence_ms=300, tail_silence_ms=700)
    out = []
    for chunk in chunks(speech, 960):  # the user talks while the first timer runs
        driver.now += 0.02
        out += driver.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})
    assert of_type(out, "input_audio_buffer.speech_stopped") and of_type(out, "response.created")
    out += step_until(driver, "response.done")
    second_deadline = driver.now + reply_audio_ms(out) / 1000 + 5.0
    assert second_deadline > first_deadline
    assert driver.session.next_deadline() == pytest.approx(second_deadline)
    assert TIMEOUT not in types(driver.advance(second_deadline - 0.01 - driver.now))
    assert TIMEOUT in types(driver.advance(0.01))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_a_response_cut_off_by_the_user_does_not_start_the_count_while_they_speak() -> None:
    driver = session_with({"type": "server_vad", "idle_timeout_ms": 5000, "silence_duration_ms": 800})
    text = ("I would like to book a table for four people tomorrow evening at eight, somewhere quiet near the "
            "river please, with a view of the water and a vegetarian menu for my friends")  # fmt: skip
    speech = make_speech_pcm(text, lead_silence_ms=300, tail_silence_ms=900)  # about ten seconds of talking
    out = driver.send({"type": "response.create"}) + driver.advance(0.1)
    for chunk in chunks(speech, 960):
        driver.now += 0.02
        out += driver.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})
    kinds = types(out)
    cancelled = of_type(out, "response.done")[0]["response"]
    assert (cancelled["status"], cancelled["status_details"]["reason"]) == ("cancelled", "turn_detected")
    assert kinds.count("input_audio_buffer.speech_stopped") == 1  # one long turn, not several
    assert TIMEOUT not in kinds
