"""The whole local fleet with real parts: redis-server, the simulator, workers and the nginx edge, talked to by
the official ``openai`` SDK and by raw WebSockets bound to different loopback source addresses."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import threading
from collections.abc import Iterator

import psutil
import pytest
from edge.harness import eventually, source_address, upstream_of
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from voicefleet.fleet.procs import free_port
from voicefleet.fleet.supervisor import Fleet, FleetOptions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("nginx") is None or shutil.which("redis-server") is None,
        reason="needs nginx and redis-server (apt-get install nginx redis-server)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("voicefleet.commands.worker") is None,
        reason="no voicefleet worker in this build",
    ),
]
HAS_SIMULATOR = importlib.util.find_spec("voicefleet.simulator.command") is not None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # No OPENAI_API_KEY and no upstream URL: the fleet starts its own simulator, as `voicefleet fleet` does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEFLEET_") and k != "OPENAI_API_KEY"}
    env["VOICEFLEET_DRAIN_TIMEOUT_S"] = "5"
    if not HAS_SIMULATOR:
        # Routing and restarts do not need an upstream; sessions then end with upstream_unavailable.
        env["VOICEFLEET_UPSTREAM_URL"] = "ws://127.0.0.1:9/v1/realtime"
    options = FleetOptions(
        state_dir=tmp_path_factory.mktemp("fleet"),
        workers=2,
        edge_port=free_port(),
        env=env,
        restart_backoff_s=0.2,
        edge_fail_timeout_s=1,
    )
    fleet = Fleet(options, say=lambda _: None)
    fleet.start()
    pids = {p.pid for p in fleet.processes.values() if p.pid is not None}
    try:
        yield fleet
    finally:
        fleet.stop()
        alive = [
            p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert alive == []


def sdk_client(fleet: Fleet) -> AsyncOpenAI:
    host, port = fleet.options.host, fleet.options.edge_port
    return AsyncOpenAI(
        api_key=fleet.api_key,
        base_url=f"http://{host}:{port}/v1",
        websocket_base_url=f"ws://{host}:{port}/v1",
    )


@pytest.mark.skipif(not HAS_SIMULATOR, reason="no voicefleet simulator in this build")
async def test_openai_sdk_session_through_the_edge_gets_a_response(fleet: Fleet) -> None:
    client = sdk_client(fleet)
    seen: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        async with asyncio.timeout(60):
            async for event in conn:
                seen.append(event.type)
                if event.type == "session.created":
                    await conn.conversation.item.create(
                        item={
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "Say hello."}],
                        }
                    )
                    await conn.response.create()
                if event.type == "response.done":
                    break
    await client.close()
    assert seen[0] == "session.created"
    assert "response.created" in seen and seen[-1] == "response.done"


async def worker_for(fleet: Fleet, source: str) -> str:
    """Which worker the edge picked for a session from ``source`` (dev edge header -> worker name)."""
    url = f"ws://127.0.0.1:{fleet.options.edge_port}/v1/realtime?model=gpt-realtime"
    headers = {"Authorization": f"Bearer {fleet.api_key}"}
    async with connect(url, additional_headers=headers, local_addr=(source, 0), open_timeout=15) as ws:
        name = fleet.worker_by_address(upstream_of(ws))
    assert name is not None
    return name


async def test_sites_spread_over_workers_and_reconnects_stick(fleet: Fleet) -> None:
    home = {subnet: await worker_for(fleet, source_address(subnet)) for subnet in range(1, 13)}
    assert set(home.values()) == set(fleet.worker_names), home
    for subnet, worker in home.items():
        assert await worker_for(fleet, source_address(subnet, 99)) == worker


async def test_killed_worker_is_restarted_and_serves_again(fleet: Fleet) -> None:
    victim = fleet.processes["worker-1"]
    old_pid = victim.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    stop = threading.Event()
    loop = threading.Thread(target=fleet.run, args=(stop,), daemon=True)
    loop.start()

    async def restarted() -> bool:
        return victim.pid != old_pid and victim.healthy()

    async def every_worker_reached() -> bool:
        # nginx re-admits the restarted worker once its fail_timeout (1 s here) has run out.
        seen = {await worker_for(fleet, source_address(subnet)) for subnet in range(1, 13)}
        return seen == set(fleet.worker_names)

    try:
        await eventually(restarted, 60, "worker-1 to be restarted and ready")
    finally:
        stop.set()
        loop.join(60)
    assert victim.starts == 2
    await eventually(every_worker_reached, 30, "the edge to route to the restarted worker again")
