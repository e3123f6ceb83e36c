"""The sans-I/O session: event order and errors per REALTIME_PROTOCOL.md §4 and §6, with a fake clock."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import orjson
import pytest

from voicefleet.audio.g711 import ulaw_encode
from voicefleet.audio.pcm import chunks, silence, tone
from voicefleet.audio.resample import resample
from voicefleet.audio.speech import make_speech_pcm
from voicefleet.simulator.config import Faults, SimulatorConfig
from voicefleet.simulator.recorder import EventRecorder
from voicefleet.simulator.scenario import scenario_from_dict
from voicefleet.simulator.session import CloseConnection

from .support import SessionDriver, of_type, types


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_session_created_is_first_and_has_ga_defaults() -> None:
    driver = SessionDriver()
    out = driver.advance(0)
    assert types(out) == ["session.created"]
    session = out[0]["session"]
    assert session["type"] == "realtime" and session["model"] == "gpt-realtime"
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["expires_at"] > 0 and out[0]["event_id"].startswith("event_")


def test_session_update_is_partial_and_a_rejected_update_changes_nothing() -> None:
    driver = SessionDriver()
    driver.advance(0)
    out = driver.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief.",
                       "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}}}})  # fmt: skip
    session = of_type(out, "session.updated")[0]["session"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 700
    assert session["audio"]["input"]["turn_detection"]["prefix_padding_ms"] == 300  # kept
    assert session["audio"]["output"]["voice"] == "alloy"

    bad = driver.send({"type": "session.update", "event_id": "e1",
                       "session": {"type": "realtime", "instructions": "changed", "bogus_field": 1}})  # fmt: skip
    assert types(bad) == ["error"]
    assert (
        bad[0]["error"]["code"] == "unknown_parameter" and bad[0]["error"]["param"] == "session.bogus_field"
    )
    assert bad[0]["error"]["event_id"] == "e1"
    missing = driver.send({"type": "session.update", "session": {"instructions": "x"}})
    assert missing[0]["error"]["code"] == "missing_required_parameter"
    assert missing[0]["error"]["param"] == "session.type"
    assert driver.session.session["instructions"] == "Be brief."


def test_bad_input_gives_one_error_each_and_the_session_continues() -> None:
    driver = SessionDriver()
    driver.advance(0)
    assert driver.send("{not json")[0]["error"]["code"] == "invalid_json"
    driver.session.receive_binary(driver.now)
    assert driver.session.drain(driver.now)[0]["error"]["code"] == "invalid_event"
    assert driver.send({"event_id": "x"})[0]["error"]["message"] == "The 'type' field is missing."
    unknown = driver.send({"type": "ping", "event_id": "p1"})[0]["error"]
    assert (unknown["code"], unknown["param"], unknown["event_id"]) == ("invalid_value", "type", "p1")
    audio = driver.send({"type": "input_audio_buffer.append", "audio": "***", "event_id": "a1"})[0]["error"]
    assert (audio["code"], audio["param"], audio["event_id"]) == ("invalid_value", "audio", "a1")
    assert (
        driver.send({"type": "response.create", "response": {"modalities": ["text"]}})[0]["error"]["param"]
        == "response.modalities"
    )
    driver.send({"type": "response.create"})
    assert of_type(driver.run_until_idle(), "response.done")[0]["response"]["status"] == "completed"


def test_manual_commit_needs_100_ms_and_creates_the_user_item() -> None:
    driver = SessionDriver()
    driver.advance(0)
    driver.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        }
    )
    driver.send({"type": "input_audio_buffer.append", "audio": b64(silence(60))})
    empty = driver.send({"type": "input_audio_buffer.commit"})
    assert empty[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    driver.send({"type": "input_audio_buffer.append", "audio": b64(tone(200))})
    out = driver.send({"type": "input_audio_buffer.commit"})
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert out[1]["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    assert types(driver.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]


def test_text_turn_order_matches_the_ga_capture() -> None:
    driver = SessionDriver()
    driver.advance(0)
    driver.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    created = driver.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": "Say hi"}]}})  # fmt: skip
    assert types(created) == ["conversation.item.added", "conversation.item.done"]
    out = driver.send({"type": "response.create"}) + driver.run_until_idle()
    names = [n for n in types(out) if n != "response.output_text.delta"]
    assert names == [
        "response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
        "response.output_text.done", "response.content_part.done", "conversation.item.done",
        "response.output_item.done", "response.done", "rate_limits.updated",
    ]  # fmt: skip
    text = "".join(d["delta"] for d in of_type(out, "response.output_text.delta"))
    assert text == of_type(out, "response.output_text.done")[0]["text"]
    usage = of_type(out, "response.done")[0]["response"]["usage"]
    assert (
        usage["input_tokens"] > 0 and usage["output_tokens"] == usage["output_token_details"]["text_tokens"]
    )


def test_response_create_while_active_and_cancel_without_response_are_errors() -> None:
    driver = SessionDriver()
    driver.advance(0)
    first = driver.send({"type": "response.create"})
    assert types(first)[0] == "response.created"
    busy = driver.send({"type": "response.create"})
    assert busy[0]["error"]["code"] == "conversation_already_has_active_response"
    out = driver.send({"type": "response.cancel"})
    done = of_type(out, "response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert types(out)[-1] == "rate_limits.updated"
    assert driver.send({"type": "response.cancel"})[0]["error"]["code"] == "response_cancel_not_active"


def test_truncate_is_checked_against_the_audio_sent_for_the_item() -> None:
    driver = SessionDriver()
    driver.advance(0)
    out = driver.send({"type": "response.create"}) + driver.run_until_idle()
    item_id = of_type(out, "response.output_item.done")[0]["item"]["id"]
    sent_ms = sum(len(base64.b64decode(d["delta"])) for d in of_type(out, "response.output_audio.delta")) / 48
    too_long = driver.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                            "audio_end_ms": int(sent_ms) + 500, "event_id": "t1"})  # fmt: skip
    assert too_long[0]["error"]["param"] == "audio_end_ms" and too_long[0]["error"]["event_id"] == "t1"
    ok = driver.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                      "audio_end_ms": 300})  # fmt: skip
    assert types(ok) == ["conversation.item.truncated"] and ok[0]["audio_end_ms"] == 300
    retrieved = driver.send({"type": "conversation.item.retrieve", "item_id": item_id})[0]["item"]
    assert len(base64.b64decode(retrieved["content"][0]["audio"])) == 300 * 48
    assert retrieved["content"][0]["transcript"] == ""
    assert types(driver.send({"type": "conversation.item.delete", "item_id": item_id})) == [
        "conversation.item.deleted"
    ]
    gone = driver.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert gone[0]["error"]["param"] == "item_id"


def test_function_call_scenario_then_template_with_the_tool_output() -> None:
    scenario = scenario_from_dict({"turns": [
        {"function_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"say": "Weather report: {function_output}"},
    ]})  # fmt: skip
    driver = SessionDriver(SimulatorConfig(scenario=scenario))
    driver.advance(0)
    out = driver.send({"type": "response.create"}) + driver.run_until_idle()
    assert [n for n in types(out) if n != "response.function_call_arguments.delta"] == [
        "response.created", "response.output_item.added", "conversation.item.added",
        "response.function_call_arguments.done", "conversation.item.done", "response.output_item.done",
        "response.done", "rate_limits.updated",
    ]  # fmt: skip
    args = of_type(out, "response.function_call_arguments.done")[0]
    assert args["name"] == "get_weather" and args["arguments"] == '{"city": "Paris"}'
    deltas = "".join(d["delta"] for d in of_type(out, "response.function_call_arguments.delta"))
    assert deltas == args["arguments"]
    driver.send({"type": "conversation.item.create", "item": {"type": "function_call_output",
                 "call_id": args["call_id"], "output": '{"temp": 18}'}})  # fmt: skip
    spoken = driver.send({"type": "response.create"}) + driver.run_until_idle()
    transcript = of_type(spoken, "response.output_audio_transcript.done")[0]["transcript"]
    assert transcript == 'Weather report: {"temp": 18}'


def test_expiry_sends_session_expired_then_closes_1001() -> None:
    driver = SessionDriver(SimulatorConfig(faults=Faults(expire_after_s=120)))
    driver.advance(0)
    assert driver.advance(60) == []
    out = driver.advance(61)
    assert out[0]["error"]["code"] == "session_expired"
    assert out[1] == CloseConnection(1001, "invalid_request_error.session_expired")
    assert driver.session.closed and driver.advance(1) == []


def test_recorder_keeps_client_events_with_audio_lengths_and_writes_json_lines(tmp_path: Path) -> None:
    recorder = EventRecorder(tmp_path / "events.jsonl")
    record = recorder.sink("sess_1", "gpt-realtime")
    record({"type": "input_audio_buffer.append", "audio": b64(bytes(960))})
    record({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_audio", "audio": b64(bytes(4800))}]}})  # fmt: skip
    assert recorder.events("sess_1")[0] == {"type": "input_audio_buffer.append", "audio": 960}
    assert recorder.events("sess_1")[1]["item"]["content"][0]["audio"] == 4800
    recorder.close()
    lines = [orjson.loads(line) for line in (tmp_path / "events.jsonl").read_bytes().splitlines()]
    assert [line["session_id"] for line in lines] == ["sess_1", "sess_1"]
    assert lines[0]["event"]["audio"] == 960 and lines[0]["monotonic"] <= lines[1]["monotonic"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_g711_input_is_turn_detected_and_g711_output_is_sent() -> None:
    driver = SessionDriver(synthesize=lambda text: tone(500))
    driver.advance(0)
    driver.send({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}})  # fmt: skip
    speech = make_speech_pcm("Hello there, how are you?", lead_silence_ms=500, tail_silence_ms=600)
    mulaw = ulaw_encode(resample(speech, 24000, 8000))
    out = []
    for chunk in chunks(mulaw, 160):  # 20 ms of G.711
        out += driver.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})
    out += driver.run_until_idle()
    started = of_type(out, "input_audio_buffer.speech_started")[0]
    assert 100 <= started["audio_start_ms"] <= 350  # 500 ms lead silence minus 300 ms prefix padding
    assert of_type(out, "input_audio_buffer.speech_stopped")[0]["audio_end_ms"] <= len(mulaw) / 8
    audio = b"".join(base64.b64decode(d["delta"]) for d in of_type(out, "response.output_audio.delta"))
    assert len(audio) == 500 * 8  # 500 ms of reply at 8 bytes per ms
    assert of_type(out, "response.done")[0]["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
