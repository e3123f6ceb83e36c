"""The official `openai` SDK against the simulator served by uvicorn on loopback: whole turns, as with OpenAI."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import ConversationItemInputAudioTranscriptionCompletedEvent
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from voicefleet.audio.pcm import chunks, duration_ms
from voicefleet.audio.speech import make_speech_pcm
from voicefleet.simulator.config import AudioPacing, Faults, SimulatorConfig
from voicefleet.simulator.scenario import scenario_from_dict

from .support import serve_simulator

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
QUESTION = "What is the weather like in Paris today?"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def sdk_client(address: str, key: str = "sk-test") -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=f"http://{address}/v1", websocket_base_url=f"ws://{address}/v1")


async def events_until(conn: Any, last_type: str, seen: list[Any]) -> list[Any]:
    async for event in conn:
        seen.append(event)
        if event.type == last_type:
            return seen
    raise AssertionError(f"connection ended before {last_type}")


async def send_speech(conn: Any, pcm: bytes) -> None:
    for chunk in chunks(pcm, 960):  # 20 ms, like push_to_talk_app.py
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())


async def test_voice_turn_with_server_vad() -> None:
    speech = make_speech_pcm(QUESTION)
    config = SimulatorConfig(profile="us-east", seed=3, pacing=AudioPacing(speed_factor=20.0))
    async with (
        serve_simulator(config) as address,
        sdk_client(address).realtime.connect(model="gpt-realtime") as conn,
    ):
        created = await conn.recv()
        assert created.type == "session.created"
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}}}})  # fmt: skip
        await send_speech(conn, bytes(700 * 48) + speech + bytes(1200 * 48))
        events = await events_until(conn, "response.done", [])
        events = await events_until(conn, "rate_limits.updated", events)
        kinds = [e.type for e in events]
        started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
        stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
        assert 700 - 300 - 60 <= started.audio_start_ms <= 700 - 300 + 120  # onset minus prefix padding
        speech_end = 700 + duration_ms(speech)
        assert speech_end <= stopped.audio_end_ms <= speech_end + 500 + 120
        assert started.item_id == stopped.item_id
        assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
        audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
        assert duration_ms(audio) > 1000  # spoken default reply
        done = events[kinds.index("response.done")].response
        assert done.status == "completed"
        assert done.usage.input_token_details.audio_tokens > 0
        assert done.usage.output_token_details.audio_tokens > 0
        transcript = next(e for e in events if e.type == "response.output_audio_transcript.done").transcript
        assert "simulator" in transcript


async def test_input_transcription_of_a_voice_turn_reaches_the_sdk_and_stays_on_the_item() -> None:
    scenario = scenario_from_dict({"turns": [{"user_text": QUESTION, "say": "You asked about Paris."}]})
    config = SimulatorConfig(scenario=scenario, pacing=AudioPacing(speed_factor=20.0))
    async with (
        serve_simulator(config) as address,
        sdk_client(address).realtime.connect(model="gpt-realtime") as conn,
    ):
        await conn.session.update(session={"type": "realtime", "audio": {"input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})  # fmt: skip
        await send_speech(conn, make_speech_pcm(QUESTION, lead_silence_ms=500, tail_silence_ms=900))
        events: list[Any] = []
        # Transcription runs beside the response, so wait for both, in whichever order they come.
        while not {COMPLETED, "rate_limits.updated"} <= {e.type for e in events}:
            events.append(await conn.recv())
        committed = next(e for e in events if e.type == "input_audio_buffer.committed")
        completed = next(e for e in events if e.type == COMPLETED)
        assert isinstance(completed, ConversationItemInputAudioTranscriptionCompletedEvent)
        assert completed.item_id == committed.item_id and completed.content_index == 0
        assert completed.transcript == QUESTION
        assert completed.usage.type == "tokens" and completed.usage.input_token_details is not None
        assert completed.usage.input_token_details.audio_tokens
        deltas = [e for e in events if e.type == "conversation.item.input_audio_transcription.delta"]
        assert "".join(d.delta for d in deltas) == QUESTION

        await conn.conversation.item.retrieve(item_id=committed.item_id)
        retrieved = (await events_until(conn, "conversation.item.retrieved", []))[-1].item
        assert retrieved.role == "user" and retrieved.content[0].transcript == QUESTION


async def test_function_call_scenario_reaches_the_tool_output() -> None:
    scenario = scenario_from_dict({"turns": [
        {"function_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"say": "It is {function_output} in Paris."},
    ]})  # fmt: skip
    async with (
        serve_simulator(SimulatorConfig(scenario=scenario)) as address,
        sdk_client(address).realtime.connect(model="gpt-realtime") as conn,
    ):
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [
            {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]})  # fmt: skip
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}
        )
        await conn.response.create()
        events = await events_until(conn, "response.done", [])
        call = next(e for e in events if e.type == "response.output_item.done").item
        assert (call.type, call.name, call.arguments) == ("function_call", "get_weather", '{"city": "Paris"}')
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}
        )
        await conn.response.create()
        events = await events_until(conn, "response.done", [])
        assert (
            next(e for e in events if e.type == "response.output_text.done").text
            == "It is 18 degrees in Paris."
        )

        async with httpx.AsyncClient() as http:
            record = (await http.get(f"http://{address}/v1/_simulator/sessions")).json()["sessions"]
        received = [e for e in record[0]["events"] if e["event"]["type"] == "conversation.item.create"]
        assert received[-1]["event"]["item"]["output"] == "18 degrees"


async def test_barge_in_cancels_the_response_then_truncate_is_checked() -> None:
    speech = make_speech_pcm(QUESTION, tail_silence_ms=900)
    config = SimulatorConfig(pacing=AudioPacing(speed_factor=1.0))  # real time: the reply is still streaming
    async with (
        serve_simulator(config) as address,
        sdk_client(address).realtime.connect(model="gpt-realtime") as conn,
    ):
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "silence_duration_ms": 500}}}})  # fmt: skip
        await send_speech(conn, speech)
        events = await events_until(conn, "response.output_audio.delta", [])
        assistant_item = events[-1].item_id
        await send_speech(conn, speech)  # the user talks over the reply
        events = await events_until(conn, "response.done", [])
        kinds = [e.type for e in events]
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.output_audio.done")
        done = events[-1].response
        assert (done.status, done.status_details.reason) == ("cancelled", "turn_detected")
        assert next(e for e in events if e.type == "response.output_item.done").item.status == "incomplete"

        await conn.conversation.item.truncate(item_id=assistant_item, content_index=0, audio_end_ms=60_000)
        rejected = await events_until(conn, "error", [])
        assert rejected[-1].error.param == "audio_end_ms"
        await conn.conversation.item.truncate(item_id=assistant_item, content_index=0, audio_end_ms=50)
        truncated = await events_until(conn, "conversation.item.truncated", [])
        assert truncated[-1].audio_end_ms == 50


@pytest.mark.parametrize(
    ("headers", "query", "code", "close"),
    [
        ({"Authorization": "Bearer wrong-key-123456"}, "?model=gpt-realtime", "invalid_api_key", 3000),
        ({}, "?model=gpt-realtime", None, 3000),
        ({"Authorization": "Bearer sk-right", "OpenAI-Beta": "realtime=v1"}, "?model=gpt-realtime",
         "beta_api_shape_disabled", 4000),
        ({"Authorization": "Bearer sk-right"}, "", "missing_model", 4000),
    ],
)  # fmt: skip
async def test_refused_connections_get_an_error_then_the_close_code(
    headers: dict[str, str], query: str, code: str | None, close: int
) -> None:
    async with serve_simulator(SimulatorConfig(api_key="sk-right")) as address:
        async with connect(f"ws://{address}/v1/realtime{query}", additional_headers=headers) as ws:
            error = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosedError) as closed:
                await ws.recv()
        assert error["type"] == "error" and error["error"]["code"] == code
        assert closed.value.rcvd is not None and closed.value.rcvd.code == close


async def test_browser_subprotocol_key_is_accepted_and_realtime_echoed() -> None:
    async with serve_simulator(SimulatorConfig(api_key="sk-right")) as address:
        protocols = ["realtime", "openai-insecure-api-key.sk-right"]
        async with connect(f"ws://{address}/v1/realtime/?model=gpt-realtime", subprotocols=protocols) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "realtime"
            assert json.loads(await ws.recv())["type"] == "session.created"


async def test_close_after_fault_drops_the_session() -> None:
    async with serve_simulator(SimulatorConfig(faults=Faults(close_after_s=0.3))) as address:
        async with connect(f"ws://{address}/v1/realtime?model=gpt-realtime") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            with pytest.raises(ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
