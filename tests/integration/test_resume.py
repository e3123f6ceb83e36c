"""Sessions that survive: blips, a dead worker, a Redis restart, upstream losses, the upstream cap, and a drain.
Real redis-server, real worker processes, the real simulator."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import websockets

from tests.support.processes import needs_redis, start_redis, start_simulator, start_worker, worker_env
from tests.support.resumable import ResumableClient
from tests.support.simulator_log import simulator_sessions
from voicefleet.fleet.procs import ManagedProcess

pytestmark = [pytest.mark.integration, needs_redis]

KILL_TRIALS = int(os.environ.get("VOICEFLEET_KILL_TRIALS", "2"))
BLIPS = int(os.environ.get("VOICEFLEET_BLIPS", "100"))


@pytest.fixture(scope="module")
def fast_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Replies generated 20x faster than real time, so many turns fit in a short test."""
    tmp = tmp_path_factory.mktemp("sim")
    sim, port = start_simulator(tmp, "--speed-factor", "20")
    try:
        yield port
    finally:
        sim.stop()


def _env(sim_port: int, redis_url: str, **extra: str) -> dict[str, str]:
    return worker_env(sim_port, VOICEFLEET_REDIS_URL=redis_url, **extra)


async def test_blips_on_the_same_worker_lose_and_repeat_no_event(
    tmp_path: Path, fast_simulator: int, redis_server: str
) -> None:
    worker, port = start_worker(tmp_path, _env(fast_simulator, redis_server))
    rng = random.Random(5)
    client = ResumableClient()
    try:
        await client.start(port)
        await client.until("fleet.session")
        blips = replies = 0
        while blips < BLIPS:
            await client.say(f"Tell me something, number {blips}.")
            # Drop the socket somewhere inside the reply (or just after it), as a network would.
            for _ in range(rng.randint(1, 40)):
                event = await client.recv()
                if event["type"] == "response.done":
                    replies += 1
                    break
            client.drop()
            blips += 1
            await client.resume(port)
            resumed, _ = await client.until("fleet.session")  # asserts its seq equals the events counted
            assert resumed["resumed"] is True
            if event["type"] != "response.done":
                await client.until("response.done")  # the rest of the reply: replayed, then live
                replies += 1
        assert len(client.event_ids) == len(set(client.event_ids)), "an event was delivered twice"
        assert replies == BLIPS and len(client.sessions) == BLIPS + 1
    finally:
        worker.stop()
    print(f"\n{BLIPS} blips: {client.received} events, 0 lost (seq checked at each resume), 0 duplicated")


async def test_kill_9_mid_turn_resumes_on_another_worker_with_the_conversation(
    tmp_path: Path, fast_simulator: int, redis_server: str
) -> None:
    workers = [start_worker(tmp_path, _env(fast_simulator, redis_server), name=f"w{i}") for i in range(2)]
    gaps: list[float] = []
    try:
        for trial in range(KILL_TRIALS):
            (victim, victim_port), (_, rescuer_port) = workers[trial % 2], workers[(trial + 1) % 2]
            client = ResumableClient()
            await client.start(victim_port)
            await client.until("fleet.session")
            await client.say(f"My name is Ada, trial {trial}.")
            await client.until("response.done")
            await client.say("What is my name?")
            await client.until("response.output_audio.delta")  # the reply is under way
            victim.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await client.until("never")
            await client.resume(rescuer_port)
            first = await client.recv()
            gaps.append(time.monotonic() - killed_at)
            assert first["type"] == "session.created"
            resumed, _ = await client.until("fleet.session")
            assert resumed["resumed"] is True and resumed["replayed"] == 3
            await client.say("Thanks, and goodbye.")
            done, _ = await client.until("response.done")
            assert done["response"]["status"] == "completed"
            replayed = await _replayed_texts(fast_simulator)
            assert replayed[:3] == [
                ("user", f"My name is Ada, trial {trial}."),
                ("assistant", replayed[1][1]),
                ("user", "What is my name?"),
            ]
            assert replayed[1][1] and replayed[3][0] == "system"  # the reply's transcript, then the note
            assert client.ws is not None
            await client.ws.close()
            victim.start()  # back for the next trial, on the same port
            victim.wait_healthy(30)
    finally:
        for proc, _ in workers:
            proc.stop()
    print(
        f"\nkill -9 -> first event on the new worker over {len(gaps)} trials: "
        f"P50 {statistics.median(gaps) * 1000:.0f} ms, "
        f"P95 {sorted(gaps)[max(0, round(0.95 * len(gaps)) - 1)] * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms"
    )


async def _replayed_texts(sim_port: int) -> list[tuple[str, str]]:
    """(role, text) of the conversation items the latest upstream session was rebuilt with, in order."""
    events = [entry["event"] for entry in (await simulator_sessions(sim_port))[-1]["events"]]
    items = [e["item"] for e in events if e.get("type") == "conversation.item.create"
             and str(e["item"].get("id", "")).startswith("fleet_r")]  # fmt: skip
    return [(i["role"], i["content"][0]["text"]) for i in items if i.get("type") == "message"]


async def test_redis_restart_drops_no_live_session_and_checkpoints_catch_up(
    tmp_path: Path, fast_simulator: int
) -> None:
    redis_proc, url = start_redis(tmp_path)
    worker, port = start_worker(tmp_path, _env(fast_simulator, url))
    client = ResumableClient()
    try:
        await client.start(port)
        await client.until("fleet.session")
        await client.say("Before the outage.")
        await client.until("response.done")
        redis_proc.stop()
        await client.say("During the outage.")
        done, _ = await client.until("response.done")
        assert done["response"]["status"] == "completed"
        async with httpx.AsyncClient() as http:
            ready = (await http.get(f"http://127.0.0.1:{port}/readyz")).json()
            deadline = time.monotonic() + 10
            metrics = ""
            while time.monotonic() < deadline and "voicefleet_redis_up 0.0" not in metrics:
                metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                await asyncio.sleep(0.1)
        assert ready["store"] == "degraded" and ready["ready"] is True  # degraded, still serving
        assert "voicefleet_redis_up 0.0" in metrics
        assert 'voicefleet_redis_failures_total{operation="checkpoint"}' in metrics
        redis_proc.start()  # same port, empty: it kept nothing on disk
        redis_proc.wait_healthy(15)
        store = redis.Redis.from_url(url)
        key = f"vf:{{{client.session_id}}}:items"
        deadline = time.monotonic() + 15
        texts: list[str] = []
        while time.monotonic() < deadline and "During the outage." not in texts:
            raw = store.get(key)
            texts = [r.get("text", "") for r in orjson.loads(raw)] if raw else []
            await asyncio.sleep(0.1)
        assert "Before the outage." in texts and "During the outage." in texts
        await client.say("After the outage.")
        await client.until("response.done")
        store.close()
    finally:
        worker.stop()
        redis_proc.stop()


@pytest.mark.parametrize(
    ("sim_args", "worker_extra", "notices"),
    [
        (("--close-after", "1.5"), {}, True),
        (("--expire-after", "3"), {"VOICEFLEET_UPSTREAM_MAX_SESSION_S": "2"}, False),
    ],
    ids=["upstream-closed-mid-session", "upstream-cap"],
)
async def test_upstream_losses_and_the_cap_are_invisible_but_for_notices(
    tmp_path: Path, redis_server: str, sim_args: tuple[str, ...], worker_extra: dict[str, str], notices: bool
) -> None:
    sim, sim_port = start_simulator(tmp_path, "--speed-factor", "20", *sim_args)
    worker, port = start_worker(tmp_path, _env(sim_port, redis_server, **worker_extra))
    client = ResumableClient()
    seen: list[dict[str, object]] = []
    try:
        await client.start(port)
        await client.until("fleet.session")
        started = time.monotonic()
        turns = 0
        while time.monotonic() - started < 7.0:
            await client.say(f"Turn {turns}: still there?")
            _, events = await client.until("response.done")
            seen += events
            turns += 1
            await asyncio.sleep(0.4)  # a pause between turns, as people make
        upstream_sessions = len(await simulator_sessions(sim_port))
    finally:
        worker.stop()
        sim.stop()
    assert [e for e in seen if e["type"] == "error"] == []
    assert not [e for e in seen if e["type"] == "session.created"]
    states = [e["state"] for e in seen if e["type"] == "fleet.upstream"]
    assert upstream_sessions >= 3, "the upstream was replaced several times"
    if notices:
        assert states.count("reconnecting") >= 2 and states.count("restored") >= 2
    else:
        assert states == [], "a planned rotation is not the client's business"
    assert turns >= 5


async def test_sigterm_with_20_live_sessions_all_resume_elsewhere(
    tmp_path: Path, fast_simulator: int, redis_server: str
) -> None:
    draining, drain_port = start_worker(tmp_path, _env(fast_simulator, redis_server), name="draining")
    other: ManagedProcess
    other, other_port = start_worker(tmp_path, _env(fast_simulator, redis_server), name="other")
    clients = [ResumableClient() for _ in range(20)]
    try:

        async def first_turn(client: ResumableClient, n: int) -> None:
            await client.start(drain_port)
            await client.until("fleet.session")
            await client.say(f"I am caller {n}.")
            await client.until("response.done")

        await asyncio.gather(*(first_turn(c, n) for n, c in enumerate(clients)))
        draining.signal(signal.SIGTERM)

        async def moved(client: ResumableClient, n: int) -> bool:
            migrate, _ = await client.until("fleet.migrate")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.until("never")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            await client.resume(other_port)
            resumed, _ = await client.until("fleet.session")
            await client.say("Are you still there?")
            done, _ = await client.until("response.done")
            assert client.ws is not None
            await client.ws.close()
            return (
                bool(migrate["resume_token"])
                and resumed["resumed"] is True
                and done["response"]["status"] == "completed"
            )

        results = await asyncio.gather(*(moved(c, n) for n, c in enumerate(clients)))
        assert all(results) and len(results) == 20
        assert draining.wait_exit(30) is not None, "the drained worker exits by itself"
    finally:
        draining.stop()
        other.stop()


async def test_sigterm_turns_readiness_off_at_once_and_waits_for_the_turn_boundary(
    tmp_path: Path, redis_server: str
) -> None:
    long_reply = "This reply takes a while to say, sentence after sentence. " * 3
    (tmp_path / "long.yaml").write_text(f"default_reply: {long_reply!r}\n")
    sim, sim_port = start_simulator(
        tmp_path, "--scenario", str(tmp_path / "long.yaml"), "--speed-factor", "1"
    )
    worker, port = start_worker(tmp_path, _env(sim_port, redis_server))
    client = ResumableClient()
    try:
        await client.start(port)
        await client.until("fleet.session")
        await client.say("Talk for a while.")
        await client.until("response.output_audio.delta")  # a turn is under way
        worker.signal(signal.SIGTERM)
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 5
            status = 200
            while status != 503:
                assert time.monotonic() < deadline, "readiness did not turn off"
                status = (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code
        # The session is handed over only at its turn boundary: the reply is finished first.
        done, _ = await client.until("response.done", within_s=60)
        assert done["response"]["status"] == "completed"
        migrate, _ = await client.until("fleet.migrate")
        assert migrate["resume_token"]
        assert worker.wait_exit(30) is not None
    finally:
        worker.stop()
        sim.stop()
