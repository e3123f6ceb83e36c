"""Barge-in end to end: a client plays the reply at real-time pace and talks over it; the upstream must receive a
truncate at what the client had played (within 40 ms), with and without the client's playback reports."""

from __future__ import annotations

import asyncio
import base64
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.support.processes import CLIENT_KEY, start_simulator, start_worker, worker_env
from tests.support.simulator_log import latest_session_events

pytestmark = pytest.mark.integration

LONG_REPLY = (
    "Let me tell you about the weather across Europe this week. In Paris it is mild and partly cloudy, "
    "in London there is light rain most days, and in Berlin the skies stay grey until the weekend."
)


@dataclass
class Player:
    """Plays received audio in real time from the first delta, item after item, like a speaker would."""

    items: list[tuple[str, float]] = field(default_factory=list)  # (item_id, ms received)
    started_at: float | None = None
    response_id: str | None = None
    stopped: bool = True

    def start(self, response_id: str) -> None:
        self.items, self.started_at, self.response_id, self.stopped = [], None, response_id, False

    def receive(self, response_id: str, item_id: str, nbytes: int) -> None:
        if self.stopped or response_id != self.response_id:
            return  # audio of a response the user already talked over is dropped, as a real client does
        if self.started_at is None:
            self.started_at = time.monotonic()
        if self.items and self.items[-1][0] == item_id:
            self.items[-1] = (item_id, self.items[-1][1] + nbytes / 48)
        else:
            self.items.append((item_id, nbytes / 48))

    def position(self) -> tuple[str, float] | None:
        """(item playing, ms of it played) right now."""
        if self.started_at is None or not self.items:
            return None
        budget = (time.monotonic() - self.started_at) * 1000
        for item_id, ms in self.items:
            if budget <= ms:
                return item_id, budget
            budget -= ms
        return self.items[-1][0], self.items[-1][1]

    def stop(self) -> tuple[str, float] | None:
        where = self.position()
        self.stopped = True
        return where


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    tmp = tmp_path_factory.mktemp("bargein")
    scenario = tmp / "scenario.yaml"
    scenario.write_text(f"default_reply: {LONG_REPLY!r}\n")
    sim, sim_port = start_simulator(tmp, "--scenario", str(scenario), "--speed-factor", "4")
    worker, port = start_worker(tmp, worker_env(sim_port))
    try:
        yield port, sim_port
    finally:
        worker.stop()
        sim.stop()


async def _speak(conn: Any, pcm: bytes) -> None:
    for start in range(0, len(pcm), 960):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + 960]).decode())
        await asyncio.sleep(0.0025)  # 8x real time: the VAD works on the audio timeline, not the wall clock


async def _report_playback(conn: Any, player: Player) -> None:
    while True:
        await asyncio.sleep(0.1)
        where = None if player.stopped else player.position()
        if where is not None:
            await conn.send({"type": "fleet.playback", "item_id": where[0], "played_ms": round(where[1])})


async def _trials(port: int, speech: bytes, *, count: int, acks: bool, seed: int) -> dict[str, float]:
    """Run `count` barge-ins in one session; the client's stop position per interrupted item."""
    rng = random.Random(seed)
    client = AsyncOpenAI(
        api_key=CLIENT_KEY,
        base_url=f"http://127.0.0.1:{port}/v1",
        websocket_base_url=f"ws://127.0.0.1:{port}/v1",
    )
    player = Player()
    heard: dict[str, float] = {}
    talked_over: set[str] = set()
    async with client.realtime.connect(model="gpt-realtime") as conn:
        reporter = asyncio.create_task(_report_playback(conn, player)) if acks else None
        talking: asyncio.Task[None] | None = None
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Tell me about the weather."}],
            }
        )
        await conn.response.create()
        async with asyncio.timeout(120):
            async for event in conn:
                if event.type == "error":
                    pytest.fail(f"unexpected error: {event.error}")
                if event.type == "response.created":
                    player.start(event.response.id)
                elif event.type == "response.output_audio.delta":
                    player.receive(event.response_id, event.item_id, len(base64.b64decode(event.delta)))
                    idle = talking is None or talking.done()
                    if idle and player.started_at is not None and event.response_id not in talked_over:
                        talked_over.add(event.response_id)
                        delay = rng.uniform(0.25, 0.9)  # talk over the reply after this much playback
                        talking = asyncio.create_task(_talk_after(conn, speech, delay))
                elif event.type == "input_audio_buffer.speech_started":
                    where = player.stop()
                    if where is not None:
                        heard[where[0]] = where[1]
                elif (
                    event.type == "conversation.item.truncated"
                    and len(heard) == count
                    and event.item_id == list(heard)[-1]
                ):
                    break  # the last interruption reached the upstream too
        for task in (reporter, talking):
            if task is not None:
                task.cancel()
    return heard


async def _talk_after(conn: Any, speech: bytes, delay: float) -> None:
    await asyncio.sleep(delay)
    await _speak(conn, speech)


async def test_truncate_matches_what_the_client_played(relay: tuple[int, int], question_pcm: bytes) -> None:
    port, sim_port = relay
    speech = question_pcm[48 * 300 :]  # start talking at once (drop the lead silence)
    with_acks = await _trials(port, speech, count=12, acks=True, seed=1)
    truncates_acked = await _truncates(sim_port)
    without_acks = await _trials(port, speech, count=8, acks=False, seed=2)
    truncates_estimated = await _truncates(sim_port)

    errors: list[float] = []
    for heard, truncates in ((with_acks, truncates_acked), (without_acks, truncates_estimated)):
        assert set(heard) <= set(truncates), "every interrupted item was truncated upstream"
        for item_id, played in heard.items():
            errors.append(abs(truncates[item_id] - played))
            assert abs(truncates[item_id] - played) <= 40, (item_id, truncates[item_id], played)
    assert len(errors) == 20
    print(
        f"\nbarge-in truncate error over {len(errors)} interruptions: median {statistics.median(errors):.1f} ms, "
        f"max {max(errors):.1f} ms (acked: {len(with_acks)}, estimated: {len(without_acks)})"
    )


async def _truncates(sim_port: int) -> dict[str, int]:
    events = await latest_session_events(sim_port)
    return {e["item_id"]: e["audio_end_ms"] for e in events if e.get("type") == "conversation.item.truncate"}
