"""Failover through the nginx edge with the whole local fleet: real redis-server, real workers, the simulator
and nginx, run by the Fleet supervisor. Clients connect to the edge only, from loopback source addresses in
their own /24s (what ip_hash routes by), and resume with their token and event count wherever the edge sends
them: after a kill -9 of their worker, and through a rolling restart of every worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import websockets
from edge.harness import eventually, source_address, upstream_of

from tests.support.resumable import ResumableClient
from voicefleet.fleet.procs import free_port
from voicefleet.fleet.supervisor import Fleet, FleetOptions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("nginx") is None or shutil.which("redis-server") is None,
        reason="needs nginx and redis-server (apt-get install nginx redis-server)",
    ),
]

WORKERS = 3
FAILOVER_TRIALS = int(os.environ.get("VOICEFLEET_FAILOVER_TRIALS", "10"))
FAILOVER_SOURCE = source_address(1)  # 127.0.1.5
SESSIONS_PER_WORKER = 2  # K = 6 sessions over 3 workers for the rolling restart


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three workers behind the edge, supervised in a background thread for the whole module, as
    ``voicefleet fleet`` supervises them."""
    # No OPENAI_API_KEY and no upstream URL: the fleet starts its own simulator.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEFLEET_") and k != "OPENAI_API_KEY"}
    env["VOICEFLEET_DRAIN_TIMEOUT_S"] = "10"
    options = FleetOptions(
        state_dir=tmp_path_factory.mktemp("fleet"),
        workers=WORKERS,
        edge_port=free_port(),
        env=env,
        restart_backoff_s=0.2,
        # The edge re-admits a worker 1 s after failed connects, so rolling restarts wait 1 s per worker.
        edge_fail_timeout_s=1,
        # Every killed worker here has served a whole turn: it is not crash-looping, so it comes back at once
        # (with the 30 s default, repeated kills would earn growing backoff and, after three, a new port).
        stable_after_s=1.0,
    )
    fleet = Fleet(options, say=lambda _: None)
    fleet.start()
    stop = threading.Event()
    supervisor = threading.Thread(target=fleet.run, args=(stop,), kwargs={"poll_s": 0.05}, daemon=True)
    supervisor.start()
    try:
        yield fleet
    finally:
        stop.set()
        supervisor.join(60)
        fleet.stop()


def client_from(fleet: Fleet, source: str) -> ResumableClient:
    """A client whose every socket (first connect and resumes) leaves from ``source``."""
    return ResumableClient(key=fleet.api_key, local_addr=(source, 0))


def worker_of(fleet: Fleet, client: ResumableClient) -> str:
    """The worker that answered the client's current socket, named by the dev edge's upstream header."""
    assert client.ws is not None
    name = fleet.worker_by_address(upstream_of(client.ws))
    assert name is not None
    return name


def tried_by_edge(client: ResumableClient) -> int:
    """How many workers nginx tried for the current socket (it lists every address it tried)."""
    assert client.ws is not None and client.ws.response is not None
    return len(client.ws.response.headers.get("X-Voicefleet-Upstream", "").split(","))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: small samples report a value that was measured, not an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


async def one_turn(client: ResumableClient, text: str) -> dict[str, object]:
    await client.say(text)
    done, _ = await client.until("response.done")
    assert done["response"]["status"] == "completed", done
    return done


async def worker_restarted(fleet: Fleet, name: str, old_pid: int) -> None:
    proc = fleet.processes[name]

    async def back() -> bool:
        return proc.pid != old_pid and await asyncio.to_thread(proc.healthy)

    await eventually(back, 30, f"{name} to be restarted by the supervisor and ready")


async def test_kill_9_fails_over_through_the_edge_to_another_worker_that_resumes(fleet: Fleet) -> None:
    gaps: list[float] = []
    tried_dead_first = replies_lost = 0
    for trial in range(FAILOVER_TRIALS):
        client = client_from(fleet, FAILOVER_SOURCE)
        await client.start(fleet.options.edge_port)
        await client.until("fleet.session")
        victim = worker_of(fleet, client)
        await one_turn(client, f"My name is Ada, trial {trial}.")

        proc = fleet.processes[victim]
        victim_pid = proc.pid
        assert victim_pid is not None
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)
        with pytest.raises(websockets.ConnectionClosed):
            await client.until("never")  # the edge closes the client side when the worker's socket dies
        # Same source address: ip_hash points at the dead worker, nginx fails the connect and tries another.
        await client.resume(fleet.options.edge_port)
        first = await client.recv()
        gaps.append(time.monotonic() - killed_at)
        rescuer = worker_of(fleet, client)
        assert rescuer != victim, "the supervisor cannot have the killed worker back within milliseconds"
        tried_dead_first += tried_by_edge(client) > 1
        assert first["type"] == "session.created"
        resumed, _ = await client.until("fleet.session")  # the client also checks seq == events it counted
        assert resumed["resumed"] is True and resumed["session_id"] == client.sessions[0]["session_id"]
        # Rebuilt from Redis on the rescuer: the user's words always (checkpointed when final, before the reply
        # starts); the reply too, unless the kill beat its checkpoint. The worker writes that checkpoint only
        # after forwarding response.done, so a kill right after the turn sometimes wins: counted and printed.
        assert resumed["replayed"] in (1, 2), resumed
        replies_lost += resumed["replayed"] == 1
        await one_turn(client, "What is my name?")
        assert len(client.event_ids) == len(set(client.event_ids)), "an event was delivered twice"
        assert client.ws is not None
        await client.ws.close()
        # The next trial starts from a whole fleet: wait until the supervisor has the victim back.
        await worker_restarted(fleet, victim, victim_pid)

    p50, p95 = statistics.median(gaps) * 1000, percentile(gaps, 0.95) * 1000
    print(
        f"\nkill -9 -> first event on the new socket through the edge, {len(gaps)} trials: "
        f"P50 {p50:.0f} ms, P95 {p95:.0f} ms, max {max(gaps) * 1000:.0f} ms "
        f"(nginx tried the dead worker first in {tried_dead_first}; "
        f"the rebuilt conversation lacked the reply the client had seen in {replies_lost})"
    )


@dataclass
class Move:
    """One displacement of a session: its socket closed (after fleet.migrate, or not) and it resumed."""

    migrated: bool
    close_code: int | None
    resumed_on: str


async def sessions_spread_over_workers(fleet: Fleet, per_worker: int) -> list[ResumableClient]:
    """Live sessions from different /24s, ``per_worker`` of them on each worker. Which worker a /24 lands on
    is ip_hash's choice, so sessions are opened from one /24 after another and kept while their worker has
    room (the edge's own answer, not a prediction of its hash)."""
    spread: dict[str, list[ResumableClient]] = {name: [] for name in fleet.worker_names}
    for subnet in range(2, 120):
        client = client_from(fleet, source_address(subnet))
        await client.start(fleet.options.edge_port)
        await client.until("fleet.session")
        home = spread[worker_of(fleet, client)]
        if len(home) < per_worker:
            home.append(client)
        else:
            assert client.ws is not None
            await client.ws.close()
        if all(len(clients) == per_worker for clients in spread.values()):
            return [client for clients in spread.values() for client in clients]
    raise AssertionError(
        f"ip_hash sent 118 /24s to too few workers: { {n: len(c) for n, c in spread.items()} }"
    )


async def ride_out(fleet: Fleet, client: ResumableClient, restart: asyncio.Future[None]) -> list[Move]:
    """Follow one session through the rolling restart: each time its socket closes, resume through the edge
    with the latest token and the events counted. A session resumed onto a worker not yet restarted moves
    again, so this runs until the restart is over."""
    moves: list[Move] = []
    migrated = False
    while migrated or not restart.done():
        event = asyncio.ensure_future(client.recv(within_s=60))
        # After fleet.migrate the close is due at once; otherwise any event, or the end of the restart.
        await asyncio.wait({event} if migrated else {event, restart}, return_when=asyncio.FIRST_COMPLETED)
        if not event.done():
            event.cancel()  # websockets' recv is cancellation-safe: nothing is lost
            await asyncio.gather(event, return_exceptions=True)
            break
        try:
            received = event.result()
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            await client.resume(fleet.options.edge_port)
            resumed, _ = await client.until("fleet.session")
            assert resumed["resumed"] is True
            moves.append(Move(migrated, code, worker_of(fleet, client)))
            migrated = False
            continue
        if received["type"] == "fleet.migrate":
            assert received["reason"] and received["resume_token"] == client.token
            migrated = True
    return moves


async def test_rolling_restart_moves_every_live_session_and_replaces_every_worker(fleet: Fleet) -> None:
    clients = await sessions_spread_over_workers(fleet, SESSIONS_PER_WORKER)
    # Mid-conversation: each session has a turn behind it, which every worker it moves to must know.
    await asyncio.gather(*(one_turn(c, f"I am caller {n}.") for n, c in enumerate(clients)))
    pids_before = {name: fleet.processes[name].pid for name in fleet.worker_names}

    restart: asyncio.Future[None] = asyncio.ensure_future(asyncio.to_thread(fleet.rolling_restart))
    try:
        moved = await asyncio.gather(*(ride_out(fleet, c, restart) for c in clients))
    finally:
        await restart
    pids_after = {name: fleet.processes[name].pid for name in fleet.worker_names}

    for client, moves in zip(clients, moved, strict=True):
        assert moves, f"session {client.session_id} was never moved"
        assert moves[0].migrated, "a drained worker tells its sessions before it closes them"
        # A move after fleet.migrate closes with 1012; a worker that died otherwise just closes.
        assert all(m.close_code == 1012 for m in moves if m.migrated), moves
        assert len(client.sessions) == len(moves) + 1 and all(s["resumed"] for s in client.sessions[1:])
        assert len({s["session_id"] for s in client.sessions}) == 1
        # Drained at a turn boundary, checkpointed before the close: the whole turn (user + reply) moved.
        assert [s["replayed"] for s in client.sessions[1:]] == [2] * len(moves), client.sessions
    # Every session still answers, on a worker that was restarted.
    await asyncio.gather(*(one_turn(c, "Are you still there?") for c in clients))
    for client in clients:
        assert len(client.event_ids) == len(set(client.event_ids)), "an event was delivered twice"
        assert client.ws is not None
        await client.ws.close()
    assert all(pids_after[n] != pids_before[n] for n in fleet.worker_names), (pids_before, pids_after)
    assert all(fleet.processes[n].healthy() for n in fleet.worker_names)

    all_moves = [m for moves in moved for m in moves]
    print(
        f"\nrolling restart of {WORKERS} workers with {len(clients)} live sessions: {len(all_moves)} moves "
        f"({sum(m.migrated for m in all_moves)} after fleet.migrate + 1012), 0 sessions lost; "
        f"moves per session {[len(m) for m in moved]}"
    )
