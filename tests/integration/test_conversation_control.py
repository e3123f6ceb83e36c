"""Server-side tools through a real worker and simulator, with the official SDK as the client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.support.processes import CLIENT_KEY, start_simulator, start_worker, worker_env
from tests.support.simulator_log import latest_session_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCENARIO = {
    "turns": [
        {"function_call": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}},
        {"say": "Here is the weather: {function_output}"},
        {"function_call": {"name": "slow_lookup", "arguments": {}}},
        {"say": "The lookup failed: {function_output}"},
        {"function_call": {"name": "open_door", "arguments": {"door": "front"}}},
        {"say": "Done: {function_output}"},
    ]
}


@pytest.fixture(scope="module")
def tool_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    tmp = tmp_path_factory.mktemp("tools")
    scenario = tmp / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    sim, sim_port = start_simulator(tmp, "--scenario", str(scenario))
    env = worker_env(sim_port, VOICEFLEET_TOOLS="tests.support.tools_for_tests", PYTHONPATH=str(REPO))
    worker, port = start_worker(tmp, env)
    try:
        yield port, sim_port
    finally:
        worker.stop()
        sim.stop()


async def _until_done(conn: Any, seen: list[Any]) -> Any:
    """Events up to the next response.done, collected in `seen`; returns that response.done."""
    async with asyncio.timeout(30):
        async for event in conn:
            seen.append(event)
            if event.type == "error":
                pytest.fail(f"unexpected error event: {event.error}")
            if event.type == "response.done":
                return event
    pytest.fail("connection ended before response.done")


def _function_calls(events: list[Any]) -> list[str]:
    return [e.name for e in events if e.type == "response.function_call_arguments.done"]


async def test_server_tools_run_in_the_worker_and_client_tools_reach_the_client(
    tool_relay: tuple[int, int], question_pcm: bytes
) -> None:
    port, sim_port = tool_relay
    client = AsyncOpenAI(
        api_key=CLIENT_KEY,
        base_url=f"http://127.0.0.1:{port}/v1",
        websocket_base_url=f"ws://127.0.0.1:{port}/v1",
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        # 1. A spoken question: the model calls get_weather; the worker runs it and asks for the spoken answer.
        for start in range(0, len(question_pcm), 960):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(question_pcm[start : start + 960]).decode()
            )
        seen: list[Any] = []
        first = await _until_done(conn, seen)
        assert first.response.output == []  # the server tool's call is not shown to the client
        answer = await _until_done(conn, seen)
        assert _function_calls(seen) == []
        transcript = "".join(e.delta for e in seen if e.type == "response.output_audio_transcript.delta")
        assert "partly cloudy" in transcript and answer.response.status == "completed"
        assert any(e.type == "response.output_audio.delta" for e in seen)

        # 2. A tool that hangs: its timeout becomes an error output; the session carries on and speaks.
        seen = []
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Look it up."}],
            }
        )
        await conn.response.create()
        await _until_done(conn, seen)
        spoken = await _until_done(conn, seen)
        transcript = "".join(e.delta for e in seen if e.type == "response.output_audio_transcript.delta")
        assert "did not answer" in transcript and spoken.response.status == "completed"

        # 3. A tool the worker does not own: the client sees the call, runs it, and answers.
        seen = []
        await conn.response.create()
        await _until_done(conn, seen)
        assert _function_calls(seen) == ["open_door"]
        call = next(e for e in seen if e.type == "response.function_call_arguments.done")
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"opened": true}'}
        )
        await conn.response.create()
        seen = []
        await _until_done(conn, seen)
        transcript = "".join(e.delta for e in seen if e.type == "response.output_audio_transcript.delta")
        assert '{"opened": true}' in transcript

    received = await latest_session_events(sim_port)
    outputs = [e["item"] for e in received if e.get("type") == "conversation.item.create"
               and e["item"].get("type") == "function_call_output"]  # fmt: skip
    weather, slow, door = (
        json.loads(o["output"]) if o["output"].startswith("{") else o["output"] for o in outputs
    )
    assert weather == {
        "location": "Paris",
        "temperature": 18,
        "unit": "celsius",
        "conditions": "partly cloudy",
    }
    assert "did not answer within 0.3 seconds" in slow["error"]
    assert door == {"opened": True}
    tools = next(e for e in received if e.get("type") == "session.update")["session"]["tools"]
    assert {t["name"] for t in tools} == {"get_weather", "check_url", "slow_lookup"}
