"""The rendered edge in front of stand-in WebSocket backends: upgrade, client address, stickiness, failover,
connection limits. These prove the nginx template; test_fleet.py proves it again with real workers."""

from __future__ import annotations

import contextlib
import http.client
import json
from pathlib import Path

import pytest
from edge.harness import (
    needs_nginx,
    open_from,
    running_edge,
    server_port,
    source_address,
    stand_in_backend,
    upstream_of,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = [pytest.mark.integration, needs_nginx]

SUBNETS = range(1, 25)


async def test_websocket_upgrade_reaches_a_backend_with_the_client_address(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a:
        with running_edge(tmp_path, [server_port(a)]) as (edge_port, _):
            async with open_from(edge_port, "127.0.1.5") as ws:
                hello = json.loads(await ws.recv())
                assert upstream_of(ws) == f"127.0.0.1:{server_port(a)}"
    assert hello == {"backend": "a", "x_real_ip": "127.0.1.5", "x_forwarded_for": "127.0.1.5"}


async def test_client_supplied_forwarded_for_is_not_trusted(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a:
        with running_edge(tmp_path, [server_port(a)]) as (edge_port, _):
            url = f"ws://127.0.0.1:{edge_port}/v1/realtime"
            async with connect(url, additional_headers={"X-Forwarded-For": "203.0.113.9"}) as ws:
                hello = json.loads(await ws.recv())
    assert hello["x_forwarded_for"] == "127.0.0.1"


async def test_clients_spread_by_slash24_and_reconnects_stick(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a, stand_in_backend("b") as b, stand_in_backend("c") as c:
        ports = [server_port(s) for s in (a, b, c)]
        with running_edge(tmp_path, ports) as (edge_port, _):
            first: dict[int, str] = {}
            for subnet in SUBNETS:
                async with open_from(edge_port, source_address(subnet, 5)) as ws:
                    first[subnet] = json.loads(await ws.recv())["backend"]
            # Another host of the same /24 (the NAT case), and the same host again: same backend.
            for subnet in SUBNETS:
                for host in (5, 77, 200):
                    async with open_from(edge_port, source_address(subnet, host)) as ws:
                        assert json.loads(await ws.recv())["backend"] == first[subnet], (subnet, host)
    assert set(first.values()) == {"a", "b", "c"}, first


async def test_connect_failure_fails_over_to_another_backend(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a, stand_in_backend("b") as b:
        ports = {"a": server_port(a), "b": server_port(b)}
        with running_edge(tmp_path, list(ports.values())) as (edge_port, _):
            homes: dict[int, str] = {}
            for subnet in SUBNETS:
                async with open_from(edge_port, source_address(subnet)) as ws:
                    homes[subnet] = json.loads(await ws.recv())["backend"]
            a.close()
            await a.wait_closed()
            # Every client, including those whose home was "a", still gets a session: nginx retries on "b".
            for subnet in SUBNETS:
                async with open_from(edge_port, source_address(subnet)) as ws:
                    assert json.loads(await ws.recv())["backend"] == "b"
    assert "a" in homes.values()


async def test_edge_answers_its_own_healthz_and_hides_worker_metrics(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a:
        port = server_port(a)
        with running_edge(tmp_path, [port]) as (edge_port, _):
            a.close()
            await a.wait_closed()
            statuses = {}
            for path in ("/healthz", "/metrics"):
                conn = http.client.HTTPConnection("127.0.0.1", edge_port, timeout=5)
                conn.request("GET", path)
                statuses[path] = conn.getresponse().status
                conn.close()
    assert statuses == {"/healthz": 200, "/metrics": 404}


async def test_connections_per_client_address_are_capped(tmp_path: Path) -> None:
    async with stand_in_backend("a") as a:
        with running_edge(tmp_path, [server_port(a)], max_conns_per_client=2) as (edge_port, _):
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(2):
                    await stack.enter_async_context(open_from(edge_port, "127.0.3.3"))
                with pytest.raises(InvalidStatus) as refused:
                    await stack.enter_async_context(open_from(edge_port, "127.0.3.3"))
                # A different client address is unaffected.
                await stack.enter_async_context(open_from(edge_port, "127.0.4.3"))
    assert refused.value.response.status_code == 429
