"""Input audio transcription (REALTIME_PROTOCOL.md §3.2, §4.2): deltas and `completed` after each commit, with the
scripted words or a placeholder, kept on the item, and never lost, duplicated or reordered."""

from __future__ import annotations

import base64
import shutil
from typing import Any

import pytest

from voicefleet.audio.pcm import chunks, tone
from voicefleet.audio.speech import make_speech_pcm
from voicefleet.simulator.config import SimulatorConfig
from voicefleet.simulator.scenario import scenario_from_dict
from voicefleet.simulator.session import Output
from voicefleet.simulator.usage import text_tokens

from .support import SessionDriver, of_type, types

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def manual_session(scenario: dict[str, Any] | None = None, transcription: Any = None) -> SessionDriver:
    """A session with push-to-talk commits and transcription on (unless `transcription` says otherwise)."""
    config = SimulatorConfig(scenario=scenario_from_dict(scenario)) if scenario else SimulatorConfig()
    driver = SessionDriver(config)
    driver.advance(0)
    given = {"model": "gpt-4o-mini-transcribe"} if transcription is None else transcription
    update = driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": None, "transcription": given or None}}}})  # fmt: skip
    assert types(update) == ["session.updated"]
    return driver


def commit(driver: SessionDriver, audio_ms: int) -> str:
    driver.send({"type": "input_audio_buffer.append", "audio": b64(tone(audio_ms))})
    out = driver.send({"type": "input_audio_buffer.commit"})
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    item_id: str = out[0]["item_id"]
    return item_id


def test_the_committed_item_gets_the_scripted_words_after_the_response_has_started() -> None:
    words = "What is the weather in Paris?"
    driver = manual_session({"turns": [{"user_text": words, "say": "You asked: {user_text}"}]})
    item_id = commit(driver, 1400)
    out = driver.send({"type": "response.create"}) + driver.run_until_idle()
    kinds = types(out)
    assert kinds.index("response.created") < kinds.index(COMPLETED)  # asynchronous, as on OpenAI
    deltas = of_type(out, DELTA)
    assert deltas and all(d["item_id"] == item_id and d["content_index"] == 0 for d in deltas)
    assert all(isinstance(d["obfuscation"], str) and d["obfuscation"] for d in deltas)
    assert "".join(d["delta"] for d in deltas) == words
    assert max(i for i, k in enumerate(kinds) if k == DELTA) < kinds.index(COMPLETED)
    (completed,) = of_type(out, COMPLETED)
    assert (completed["item_id"], completed["content_index"], completed["transcript"]) == (item_id, 0, words)
    assert completed["usage"] == {
        "type": "tokens", "input_tokens": 14, "output_tokens": text_tokens(words),
        "total_tokens": 14 + text_tokens(words), "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
    }  # fmt: skip
    # The simulated model "heard" the same words the transcript reports.
    assert of_type(out, "response.output_audio_transcript.done")[0]["transcript"] == f"You asked: {words}"
    retrieved = driver.send({"type": "conversation.item.retrieve", "item_id": item_id})[0]["item"]
    assert retrieved["content"][0]["transcript"] == words
    assert len(base64.b64decode(retrieved["content"][0]["audio"])) == 1400 * 48


def test_without_scripted_words_the_transcript_names_the_audio_length() -> None:
    driver = manual_session()
    item_id = commit(driver, 1400)
    # No response at all: the transcript still arrives, on the session's own deadline, with no client input.
    out = driver.run_until_idle()
    assert of_type(out, COMPLETED)[0]["transcript"] == "[speech 1.4 s]"
    assert "".join(d["delta"] for d in of_type(out, DELTA)) == "[speech 1.4 s]"
    retrieved = driver.send({"type": "conversation.item.retrieve", "item_id": item_id})[0]["item"]
    assert retrieved["content"][0]["transcript"] == "[speech 1.4 s]"


def test_every_commit_gets_exactly_one_transcript_in_commit_order_even_across_cancels() -> None:
    scenario = {
        "turns": [{"user_text": "first words", "say": "One."}, {"user_text": "second words", "say": "Two."}]
    }
    driver = manual_session(scenario)
    committed: list[str] = []
    out: list[Output] = []
    committed.append(commit(driver, 500))
    # A second commit before the first turn's response is other speech: it must not repeat "first words".
    committed.append(commit(driver, 700))
    out += driver.send({"type": "response.create"})
    out += driver.send({"type": "response.cancel"})  # the reply is cut short; the transcripts are not
    committed.append(commit(driver, 300))
    out += driver.send({"type": "input_audio_buffer.clear"})
    out += driver.send({"type": "response.create"}) + driver.run_until_idle()
    completed = of_type(out, COMPLETED)
    assert [c["item_id"] for c in completed] == committed
    assert [c["transcript"] for c in completed] == ["first words", "[speech 0.7 s]", "second words"]


def test_no_transcription_events_when_transcription_is_off() -> None:
    driver = manual_session(transcription=False)
    item_id = commit(driver, 400)
    out = driver.send({"type": "response.create"}) + driver.run_until_idle()
    assert not [k for k in types(out) if k.startswith("conversation.item.input_audio_transcription")]
    retrieved = driver.send({"type": "conversation.item.retrieve", "item_id": item_id})[0]["item"]
    assert retrieved["content"][0]["transcript"] is None


def test_an_item_deleted_before_its_transcript_is_ready_gets_none() -> None:
    driver = manual_session()
    deleted, kept = commit(driver, 400), commit(driver, 400)
    assert types(driver.send({"type": "conversation.item.delete", "item_id": deleted})) == [
        "conversation.item.deleted"
    ]
    out = driver.run_until_idle()
    assert {e["item_id"] for e in of_type(out, DELTA) + of_type(out, COMPLETED)} == {kept}


@pytest.mark.parametrize(
    ("transcription", "code", "param"),
    [
        ({"model": "gpt-9-transcribe"}, "invalid_value", "session.audio.input.transcription.model"),
        ({"model": "whisper-1", "language": 5}, "invalid_type", "session.audio.input.transcription.language"),
        ({"model": "whisper-1", "bogus": 1}, "unknown_parameter", "session.audio.input.transcription.bogus"),
        ("whisper-1", "invalid_type", "session.audio.input.transcription"),
    ],
)
def test_a_bad_transcription_setting_is_refused_and_changes_nothing(
    transcription: Any, code: str, param: str
) -> None:
    driver = SessionDriver()
    driver.advance(0)
    out = driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": transcription}}}})  # fmt: skip
    assert (out[0]["error"]["code"], out[0]["error"]["param"]) == (code, param)
    assert driver.session.session["audio"]["input"]["transcription"] is None


def test_scenario_user_text_must_be_text() -> None:
    with pytest.raises(ValueError, match="user_text"):
        scenario_from_dict({"turns": [{"say": "Hi.", "user_text": ["not", "text"]}]})


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_a_server_vad_turn_is_transcribed_with_the_scripted_words() -> None:
    words = "Book a table for two."
    driver = SessionDriver(
        SimulatorConfig(scenario=scenario_from_dict({"turns": [{"user_text": words, "say": "Done."}]}))
    )
    driver.advance(0)
    driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}}}}})  # fmt: skip
    speech = make_speech_pcm(words, lead_silence_ms=500, tail_silence_ms=600)
    out: list[Output] = []
    for chunk in chunks(speech, 960):
        out += driver.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})
    out += driver.run_until_idle()
    stopped = of_type(out, "input_audio_buffer.speech_stopped")[0]
    (completed,) = of_type(out, COMPLETED)
    assert completed["item_id"] == stopped["item_id"] and completed["transcript"] == words
    assert types(out).index("input_audio_buffer.committed") < types(out).index(COMPLETED)
