"""A real worker process relaying to a real simulator process, driven by the official SDK and raw sockets."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import websockets
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from tests.support.processes import CLIENT_KEY, start_simulator, start_worker, worker_env
from tests.support.realtime_client import next_event, open_session, send, stream_audio, wait_for
from voicefleet.fleet.procs import ManagedProcess, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """(worker port, simulator port, log dir), shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("relay")
    sim, sim_port = start_simulator(tmp)
    worker, port = start_worker(tmp, worker_env(sim_port, VOICEFLEET_MAX_FRAME_BYTES="65536"))
    try:
        yield port, sim_port, tmp
    finally:
        worker.stop()
        sim.stop()


def _sdk(port: int, key: str = CLIENT_KEY) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=key, base_url=f"http://127.0.0.1:{port}/v1", websocket_base_url=f"ws://127.0.0.1:{port}/v1"
    )


async def test_official_sdk_holds_a_voice_turn_through_the_worker(
    relay: tuple[int, int, Path], question_pcm: bytes
) -> None:
    port, _, _ = relay
    seen: list[str] = []
    async with _sdk(port).realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
            }
        )
        for start in range(0, len(question_pcm), 960):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(question_pcm[start : start + 960]).decode()
            )
        audio_bytes = 0
        async with asyncio.timeout(30):
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio.delta":
                    audio_bytes += len(base64.b64decode(event.delta))
                if event.type == "error":
                    pytest.fail(f"unexpected error: {event.error}")
                if event.type == "response.done":
                    assert event.response.status == "completed"
                    assert event.response.usage is not None and event.response.usage.total_tokens
                    break
    assert seen[:2] == ["session.created", "fleet.session"]
    for expected in ("session.updated", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                     "input_audio_buffer.committed", "response.created", "response.output_audio.delta"):  # fmt: skip
        assert expected in seen, f"{expected} missing from {seen}"
    order = [seen.index(t) for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                                     "response.created", "response.output_audio.delta")]  # fmt: skip
    assert order == sorted(order)
    assert audio_bytes > 48 * 300  # at least 300 ms of spoken reply


async def test_fleet_session_carries_a_signed_resume_token(relay: tuple[int, int, Path]) -> None:
    port, _, _ = relay
    async with await open_session(port) as ws:
        created = await next_event(ws)
        fleet = await next_event(ws)
    assert created["type"] == "session.created" and created["session"]["type"] == "realtime"
    assert created["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert created["session"]["audio"]["input"]["turn_detection"]["threshold"] == 0.5
    assert fleet["type"] == "fleet.session" and fleet["resumed"] is False and fleet["replayed"] == 0
    assert fleet["session_id"].startswith("vf_") and fleet["resume_token"].count(".") == 1


async def test_bad_input_gets_errors_and_the_session_continues(relay: tuple[int, int, Path]) -> None:
    port, _, _ = relay
    async with await open_session(port) as ws:
        await wait_for(ws, "fleet.session")
        await ws.send("{this is not json")
        await ws.send(b"\x00\x01binary")
        await ws.send('{"event_id":"e-missing"}')
        await send(ws, "nope.unknown", event_id="e-unknown")
        await send(ws, "input_audio_buffer.append", event_id="e-audio", audio="!!not base64!!")
        codes = []
        for _ in range(5):
            error, _ = await wait_for(ws, "error")
            codes.append((error["error"]["code"], error["error"]["event_id"]))
        assert codes == [
            ("invalid_json", None),
            ("invalid_event", None),
            ("invalid_event", "e-missing"),
            ("invalid_value", "e-unknown"),
            ("invalid_value", "e-audio"),
        ]
        await send(ws, "conversation.item.create", item={"type": "message", "role": "user",
                                                         "content": [{"type": "input_text", "text": "hi"}]})  # fmt: skip
        await send(ws, "response.create")
        done, _ = await wait_for(ws, "response.done", within_s=20)
        assert done["response"]["status"] == "completed"


async def test_oversized_frame_closes_with_1009(relay: tuple[int, int, Path]) -> None:
    port, _, _ = relay
    async with await open_session(port) as ws:
        await wait_for(ws, "fleet.session")
        await send(ws, "input_audio_buffer.append", audio="A" * 100_000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await wait_for(ws, "never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.parametrize(
    ("key", "code", "reason"),
    [
        (None, None, "invalid_request_error"),
        ("wrong-key", "invalid_api_key", "invalid_request_error.invalid_api_key"),
    ],
)
async def test_missing_or_wrong_key_is_refused_like_openai(
    relay: tuple[int, int, Path], key: str | None, code: str | None, reason: str
) -> None:
    port, _, _ = relay
    async with await open_session(port, key=key) as ws:
        error = await next_event(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert error["type"] == "error" and error["error"]["code"] == code
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (3000, reason)


async def test_browser_subprotocol_key_is_accepted_and_realtime_echoed(relay: tuple[int, int, Path]) -> None:
    port, _, _ = relay
    protocols = ["realtime", f"openai-insecure-api-key.{CLIENT_KEY}"]
    async with await open_session(port, key=None, subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        created = await next_event(ws)
    assert created["type"] == "session.created"


async def test_upstream_key_never_reaches_client_or_logs(
    relay: tuple[int, int, Path], question_pcm: bytes
) -> None:
    port, _, tmp = relay
    async with await open_session(port) as ws:
        frames = [await ws.recv() for _ in range(2)]
        await stream_audio(ws, question_pcm)
        _, more = await wait_for(ws, "response.done", within_s=30)
    assert all("sk-upstream-secret" not in str(f) for f in frames + [orjson.dumps(m) for m in more])
    logs = "".join(p.read_text() for p in tmp.glob("worker-*.log"))
    assert "session_ended" in logs
    assert "sk-upstream-secret" not in logs and CLIENT_KEY not in logs
    assert base64.b64encode(question_pcm[48_000:48_960]).decode() not in logs


async def test_upstream_unreachable_gives_error_and_1011(tmp_path: Path) -> None:
    dead_port = free_port()  # nothing listens here
    worker: ManagedProcess
    worker, port = start_worker(tmp_path, worker_env(dead_port, VOICEFLEET_UPSTREAM_CONNECT_ATTEMPTS="2"))
    try:
        async with await open_session(port) as ws:
            error = await next_event(ws, within_s=20)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await next_event(ws)
        assert error["type"] == "error" and error["error"]["code"] == "upstream_unavailable"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    finally:
        worker.stop()


async def test_trailing_slash_route_is_served(relay: tuple[int, int, Path]) -> None:
    port, _, _ = relay
    async with await open_session(port, query="model=gpt-realtime") as ws:
        assert (await next_event(ws))["type"] == "session.created"
    async with connect(
        f"ws://127.0.0.1:{port}/v1/realtime/?model=gpt-realtime",
        additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    ) as ws:
        assert (await next_event(ws))["type"] == "session.created"


async def test_a_client_that_cannot_keep_up_is_closed_with_1013(tmp_path: Path) -> None:
    long_reply = "This answer goes on and on, sentence after sentence. " * 40
    (tmp_path / "long.yaml").write_text(f"default_reply: {long_reply!r}\n")
    sim, sim_port = start_simulator(
        tmp_path, "--scenario", str(tmp_path / "long.yaml"), "--speed-factor", "50"
    )
    worker, port = start_worker(tmp_path, worker_env(sim_port, VOICEFLEET_CLIENT_QUEUE_FRAMES="16"))
    try:
        # A client that stops reading: a tiny receive buffer and a one-frame queue, so backpressure reaches the worker.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        async with connect(
            f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
            sock=sock,
            max_queue=1,
            additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        ) as ws:
            await send(ws, "response.create")
            log = next(tmp_path.glob("worker-*.log"))
            deadline = asyncio.get_running_loop().time() + 30
            while "client_too_slow" not in log.read_text():  # the worker's own account, not a guess
                assert asyncio.get_running_loop().time() < deadline, (
                    "the worker never gave up on the slow client"
                )
                await asyncio.sleep(0.1)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await next_event(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1013,
            "client too slow: outbound queue full",
        )
    finally:
        worker.stop()
        sim.stop()
