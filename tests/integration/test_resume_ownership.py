"""Who may resume a session, and who owns it: tokens that are refused, a live owner that hands over, and a stale
owner that wakes up and is fenced out. Real redis-server, real workers, the real simulator."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
import websockets

from tests.support.processes import needs_redis, start_simulator, start_worker, worker_env
from tests.support.realtime_client import next_event
from tests.support.resumable import ResumableClient
from voicefleet.fleet.procs import ManagedProcess

pytestmark = [pytest.mark.integration, needs_redis]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str
) -> Iterator[tuple[list[tuple[ManagedProcess, int]], Path]]:
    """Two workers sharing Redis and the token secret, and the simulator; with the directory of their logs."""
    tmp = tmp_path_factory.mktemp("owners")
    sim, sim_port = start_simulator(tmp, "--speed-factor", "20")
    env = worker_env(
        sim_port, VOICEFLEET_REDIS_URL=redis_server, VOICEFLEET_API_KEYS="test-client-key,other-tenant-key"
    )
    workers = [start_worker(tmp, env, name=f"owner{i}") for i in range(2)]
    try:
        yield workers, tmp
    finally:
        for proc, _ in workers:
            proc.stop()
        sim.stop()


async def _refusal(port: int, query: str, key: str = "test-client-key") -> tuple[str, int, str]:
    from tests.support.realtime_client import open_session

    async with await open_session(port, key=key, query=query) as ws:
        error = await next_event(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    return error["error"]["code"], closed.value.rcvd.code, closed.value.rcvd.reason


async def test_forged_foreign_and_used_tokens_are_refused(
    pair: tuple[list[tuple[ManagedProcess, int]], Path],
) -> None:
    (_, port_a), (_, port_b) = pair[0]
    client = ResumableClient()
    await client.start(port_a)
    await client.until("fleet.session")
    await client.say("Remember the number 42.")
    await client.until("response.done")
    first_token = client.token
    client.drop()
    base = f"model=gpt-realtime&session_id={client.session_id}&last_seq={client.received}"
    forged = first_token[:-4] + ("AAAA" if not first_token.endswith("AAAA") else "BBBB")
    assert await _refusal(port_b, f"{base}&resume_token={forged}") == (
        "invalid_resume_token",
        4000,
        "invalid_request_error.invalid_resume_token",
    )
    # Another client (another tenant) holding this client's token still cannot take the session.
    code, close, _ = await _refusal(port_b, f"{base}&resume_token={first_token}", key="other-tenant-key")
    assert (code, close) == ("invalid_resume_token", 4000)
    await client.resume(port_b)  # the owner is alive on A: B asks it to hand over
    resumed, _ = await client.until("fleet.session")
    assert resumed["resumed"] is True and resumed["resume_token"] != first_token
    # The token just used cannot open the session a second time.
    code, close, _ = await _refusal(port_a, f"{base}&resume_token={first_token}")
    assert (code, close) == ("invalid_resume_token", 4000)
    assert client.ws is not None
    await client.ws.close()


async def test_a_live_owner_hands_the_session_over(
    pair: tuple[list[tuple[ManagedProcess, int]], Path],
) -> None:
    (_, port_a), (_, port_b) = pair[0]
    logs = pair[1]
    client = ResumableClient()
    await client.start(port_a)
    await client.until("fleet.session")
    await client.say("My favourite colour is green.")
    await client.until("response.done")
    client.drop()  # A keeps the session for the grace period: it is alive and owns it
    await client.resume(port_b)
    resumed, _ = await client.until("fleet.session")
    assert resumed["resumed"] is True and resumed["replayed"] >= 2
    await client.say("What is my favourite colour?")
    done, _ = await client.until("response.done")
    assert done["response"]["status"] == "completed"
    assert client.ws is not None
    await client.ws.close()
    ended_on_a = [
        orjson.loads(line) for p in logs.glob(f"owner0-{port_a}.log") for line in p.read_text().splitlines()
    ]
    assert any(e.get("event") == "session_ended" and e.get("session_id") == client.session_id
               and e.get("reason") == "handed_over" for e in ended_on_a)  # fmt: skip


async def test_a_stale_owner_that_wakes_up_is_fenced_out(
    pair: tuple[list[tuple[ManagedProcess, int]], Path], redis_server: str
) -> None:
    (proc_a, port_a), (_, port_b) = pair[0]
    logs = pair[1]
    client = ResumableClient()
    await client.start(port_a)
    await client.until("fleet.session")
    await client.say("Note the word zebra.")
    await client.until("response.done")
    await client.say("Tell me a long story.")
    await client.until("response.output_audio.delta")
    proc_a.signal(signal.SIGSTOP)  # A freezes mid-reply (a long GC pause, a stalled VM)
    try:
        client.drop()
        await client.resume(port_b)  # A does not answer the handover; B takes the session after a bound
        resumed, _ = await client.until("fleet.session", within_s=30)
        assert resumed["resumed"] is True
        await client.say("Are you there?")
        await client.until("response.done")
    finally:
        proc_a.signal(signal.SIGCONT)
    log_a = next(logs.glob(f"owner0-{port_a}.log"))
    deadline = time.monotonic() + 20
    ended = False
    while not ended:
        assert time.monotonic() < deadline, "the stale owner kept the session"
        events = [orjson.loads(line) for line in log_a.read_text().splitlines()]
        ended = any(
            e.get("event") == "session_ended" and e.get("session_id") == client.session_id for e in events
        )
        await asyncio.sleep(0.1)
    reasons = {
        e.get("reason")
        for e in events
        if e.get("session_id") == client.session_id and e.get("event") == "session_ended"
    }
    # A woke after B had taken the lease: its last write carried the old fence, was refused, and A let go.
    assert reasons == {"stale_owner"}
    store = redis.Redis.from_url(redis_server)
    meta = store.hgetall(f"vf:{{{client.session_id}}}:meta")
    items = orjson.loads(store.get(f"vf:{{{client.session_id}}}:items") or b"[]")
    store.close()
    assert meta[b"owner"].decode().endswith(f":{port_b}")  # B's record was not overwritten by A
    assert any(i.get("text") == "Are you there?" for i in items)
    assert client.ws is not None
    await client.ws.close()


async def test_a_token_renewed_on_the_same_worker_opens_the_session_elsewhere(
    tmp_path: Path, redis_server: str
) -> None:
    sim, sim_port = start_simulator(tmp_path, "--speed-factor", "20")
    env = worker_env(sim_port, VOICEFLEET_REDIS_URL=redis_server)
    (a, port_a), (b, port_b) = start_worker(tmp_path, env, name="a"), start_worker(tmp_path, env, name="b")
    client = ResumableClient()
    try:
        await client.start(port_a)
        await client.until("fleet.session")
        await client.say("Keep this in mind: blue.")
        await client.until("response.done")
        client.drop()
        await client.resume(port_a)  # a blip: same worker, new token
        await client.until("fleet.session")
        a.signal(signal.SIGKILL)
        with pytest.raises(websockets.ConnectionClosed):
            await client.until("never")
        await client.resume(port_b)
        resumed, _ = await client.until("fleet.session")
        assert resumed["resumed"] is True and resumed["replayed"] >= 2
        assert client.ws is not None
        await client.ws.close()
    finally:
        a.stop()
        b.stop()
        sim.stop()
