"""The demo page in a real Chromium, talking through a real worker to the simulator.

Chromium's fake microphone plays a WAV of spoken speech. The page must capture and send it (24 kHz PCM16, 20 ms
frames), play the reply, stop playback on a barge-in so the worker truncates the reply upstream where the page had
got to, and resume its session by itself when the connection drops mid-reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import CLIENT_KEY, start_simulator, start_worker, worker_env
from tests.support.simulator_log import simulator_sessions
from voicefleet.audio.pcm import REALTIME_RATE
from voicefleet.audio.speech import espeak_available, make_speech_pcm
from voicefleet.audio.wav import write_wav

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (Debian package 'chromium')"),
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (speech fixtures)"),
    pytest.mark.timeout(60),
]

QUESTION = "What is the weather in Paris?"
INTERRUPTION = "Wait, stop."
LONG_REPLY = (
    "Paris is mild and partly cloudy this week, with a little rain on Thursday and sunshine for the weekend, "
    "so a light jacket will do for most of your walks along the river."
)
SHORT_REPLY = "Okay, I will stop there."
FRAME_BYTES = REALTIME_RATE * 2 // 50  # 20 ms of PCM16 at 24 kHz
STATUS = "document.getElementById('status').dataset"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(worker port, simulator port): the simulator answers the question, then the interruption."""
    scenario = tmp_path / "scenario.json"
    turns = [{"user_text": QUESTION, "say": LONG_REPLY}, {"user_text": INTERRUPTION, "say": SHORT_REPLY}]
    scenario.write_text(json.dumps({"turns": turns}))
    sim, sim_port = start_simulator(tmp_path, "--scenario", str(scenario))
    try:
        worker, port = start_worker(tmp_path, worker_env(sim_port))
        try:
            yield port, sim_port
        finally:
            worker.stop()
    finally:
        sim.stop()


@contextlib.asynccontextmanager
async def chromium_page(microphone: Path) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page in Chromium whose microphone plays `microphone` once; and the page's uncaught errors."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                # %noloop: the file plays once and silence follows, so the user says each line once.
                f"--use-file-for-fake-audio-capture={microphone}%noloop",
            ],
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            await browser.close()


def speech_wav(path: Path, *parts: bytes) -> Path:
    write_wav(path, b"".join(parts), REALTIME_RATE)
    return path


async def _status(page: Any) -> dict[str, str]:
    data: dict[str, str] = await page.evaluate(f"({{...{STATUS}}})")
    return data


async def _transcript(page: Any, who: str) -> list[str]:
    lines: list[str] = await page.locator(f".line.{who} span:last-child").all_text_contents()
    return lines


async def test_demo_page_talks_plays_the_reply_and_stops_it_at_a_barge_in(
    relay: tuple[int, int], tmp_path: Path
) -> None:
    port, sim_port = relay
    # The question, then talking over the reply ~2 s into it. The lead silence covers the page's connect.
    microphone = speech_wav(
        tmp_path / "microphone.wav",
        make_speech_pcm(QUESTION, lead_silence_ms=1000, tail_silence_ms=2500),
        make_speech_pcm(INTERRUPTION, tail_silence_ms=4000),
    )
    async with chromium_page(microphone) as (page, page_errors):
        await page.goto(f"http://127.0.0.1:{port}/?key={CLIENT_KEY}")
        assert await page.input_value("#key") == CLIENT_KEY
        await page.click("#connect")
        await page.wait_for_function(f"{STATUS}.state === 'live'", timeout=10_000)
        # The reply is talked over: the page stops it and marks the line of what was cut.
        await page.wait_for_function(f"Number({STATUS}.speechStarted) >= 2", timeout=20_000)
        cut = await page.wait_for_selector(".line.assistant.cut", timeout=5_000)
        assert cut is not None
        cut_item, heard_ms = await cut.get_attribute("data-item-id"), await cut.get_attribute("data-heard-ms")
        assert cut_item is not None and heard_ms is not None
        await page.wait_for_selector(f".line.assistant >> text={SHORT_REPLY}", timeout=10_000)
        # The answer's audio plays after its text has arrived (replies come faster than real time).
        await page.wait_for_function(f"Number({STATUS}.playedMs) >= {int(heard_ms) + 1000}", timeout=10_000)
        user_lines, reply_lines = await _transcript(page, "user"), await _transcript(page, "assistant")
        await page.screenshot(path=str(tmp_path / "demo-page.png"), full_page=True)
        await page.click("#hangup")
        await page.wait_for_function(f"{STATUS}.state === 'closed'", timeout=5_000)
        status = await _status(page)

    assert not page_errors
    assert status["sessionId"].startswith("vf_")
    assert user_lines == [QUESTION, INTERRUPTION]
    # The long reply's text may have been cut short too (its response was cancelled); the answer is whole.
    assert len(reply_lines) == 2 and LONG_REPLY.startswith(reply_lines[0]) and len(reply_lines[0]) > 40, (
        reply_lines
    )
    assert reply_lines[1] == SHORT_REPLY
    # A good part of the long reply played before the barge-in; most of it had been received by then.
    assert 1000 <= int(heard_ms) <= 4000, heard_ms
    assert int(status["receivedMs"]) > int(status["playedMs"]) + 3000, status
    # The worker got every playback report and audio frame the page says it sent.
    assert int(status["playbackReports"]) >= 10, status
    assert await _worker_counts(port, "fleet.playback", "input_audio_buffer.append") == (
        int(status["playbackReports"]),
        int(status["appended"]),
    )

    entries = (await simulator_sessions(sim_port))[-1]["events"]
    events = [entry["event"] for entry in entries]
    appends = [
        {**e["event"], "monotonic": e["monotonic"]}
        for e in entries
        if e["event"]["type"] == "input_audio_buffer.append"
    ]
    # Framed at 20 ms and resampled to 24 kHz, whatever rate the browser's audio runs at: the audio sent spans
    # the wall-clock time it was sent over (at the wrong rate it would be off by the ratio of the rates).
    assert len(appends) > 100 and {e["audio"] for e in appends} == {FRAME_BYTES}, appends[:3]
    sent_ms = sum(e["audio"] for e in appends) / 48
    wall_ms = (appends[-1]["monotonic"] - appends[0]["monotonic"]) * 1000 + 20
    assert 0.9 <= sent_ms / wall_ms <= 1.1, (sent_ms, wall_ms)
    truncates = [e for e in events if e["type"] == "conversation.item.truncate"]
    # The reply was cut upstream where the page had stopped playing it, not at what had been sent.
    assert [t["item_id"] for t in truncates] == [cut_item], truncates
    assert abs(truncates[0]["audio_end_ms"] - int(heard_ms)) <= 100, (truncates, heard_ms)


async def _worker_counts(port: int, *client_event_types: str, within_s: float = 5.0) -> tuple[int, ...]:
    """The worker's count of each client event type, once two reads in a row agree (frames may be in flight)."""
    previous: tuple[int, ...] | None = None
    async with httpx.AsyncClient(timeout=5) as http, asyncio.timeout(within_s):
        while True:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            seen = {
                sample.labels.get("type"): int(sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "voicefleet_events_total" and sample.labels.get("direction") == "client"
            }
            counts = tuple(seen.get(event_type, 0) for event_type in client_event_types)
            if counts == previous:
                return counts
            previous = counts
            await asyncio.sleep(0.1)


class CuttableProxy:
    """A loopback TCP proxy whose connections the test can cut the way a network does (no close handshake)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side gone: so is the other, as with a dropped connection


async def test_demo_page_resumes_its_session_when_the_connection_drops_mid_reply(
    relay: tuple[int, int], tmp_path: Path
) -> None:
    port, _ = relay
    microphone = speech_wav(
        tmp_path / "question.wav", make_speech_pcm(QUESTION, lead_silence_ms=1000, tail_silence_ms=8000)
    )
    proxy = CuttableProxy(port)
    proxy_port = await proxy.start()
    try:
        async with chromium_page(microphone) as (page, page_errors):
            await page.goto(f"http://127.0.0.1:{proxy_port}/?key={CLIENT_KEY}")
            await page.click("#connect")
            await page.wait_for_function(f"{STATUS}.state === 'live'", timeout=10_000)
            first_session = (await _status(page))["sessionId"]
            # Cut while the reply is streaming: some of its events are in flight or not yet sent.
            await page.wait_for_function(
                "[...document.querySelectorAll('.line.assistant')].some(l => l.textContent.length > 20)",
                timeout=15_000,
            )
            proxy.cut()
            await page.wait_for_function(
                f"Number({STATUS}.resumes) >= 1 && {STATUS}.state === 'live'", timeout=10_000
            )
            await page.wait_for_selector(".line.assistant >> text=along the river.", timeout=10_000)
            await page.wait_for_selector("#log >> text=/fleet.session resumed=true/", timeout=5_000)
            status = await _status(page)
            reply_lines = await _transcript(page, "assistant")
            await page.click("#hangup")
    finally:
        await proxy.close()

    assert not page_errors
    assert status["sessionId"] == first_session, status
    assert status["resumes"] == "1", status
    # The page counted every event over both sockets exactly as the worker numbered them: none lost, none twice.
    assert status["seqErrors"] == "0", status
    assert reply_lines == [LONG_REPLY]
