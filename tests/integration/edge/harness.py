"""Start a real nginx edge in a temp prefix, and stand-in WebSocket backends that say who they are."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voicefleet.fleet import edge
from voicefleet.fleet.procs import HttpCheck, ManagedProcess, ProcessSpec, free_port

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None, reason="nginx not installed (apt-get install nginx)"
)


def source_address(subnet: int, host: int = 5) -> str:
    """A loopback source address in its own /24 (127.0.<subnet>.<host>): what ip_hash sees as one client site."""
    return f"127.0.{subnet}.{host}"


@contextlib.contextmanager
def running_edge(
    prefix: Path, backends: list[int], **overrides: object
) -> Iterator[tuple[int, ManagedProcess]]:
    """nginx rendered from the real template for loopback backends; yields (edge port, process)."""
    port = free_port()
    settings = edge.EdgeSettings(
        backends=tuple(edge.Backend("127.0.0.1", p) for p in backends),
        listen_port=port,
        expose_upstream_header=True,
        **overrides,  # type: ignore[arg-type]
    )
    conf = edge.write_prefix(
        prefix, edge.render_edge_config(edge.default_template_path().read_text(), settings, prefix)
    )
    edge.check_config(prefix, conf)
    proc = ManagedProcess(
        ProcessSpec(
            "edge",
            tuple(edge.nginx_argv(prefix, conf)),
            prefix / "edge.out",
            {},
            HttpCheck("127.0.0.1", port),
        )
    )
    proc.start()
    try:
        proc.wait_healthy(15.0)
        yield port, proc
    finally:
        proc.stop()
        assert not proc.running()


@contextlib.asynccontextmanager
async def stand_in_backend(name: str, port: int = 0) -> AsyncIterator[Server]:
    """A WebSocket server that sends one JSON hello naming itself and the client address headers it got."""

    async def handler(ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request is not None else Headers()
        hello = {
            "backend": name,
            "x_real_ip": headers.get("X-Real-IP"),
            "x_forwarded_for": headers.get("X-Forwarded-For"),
        }
        await ws.send(json.dumps(hello))
        await ws.wait_closed()

    def healthz(ws: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return ws.respond(200, "ok\n")
        return None

    async with serve(handler, "127.0.0.1", port, process_request=healthz) as server:
        yield server


def server_port(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def open_from(
    edge_port: int, source: str, path: str = "/v1/realtime"
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the edge whose TCP connection comes from ``source`` (any 127/8 address works on Linux)."""
    async with connect(f"ws://127.0.0.1:{edge_port}{path}", local_addr=(source, 0), open_timeout=10) as ws:
        yield ws


def upstream_of(ws: ClientConnection) -> str:
    """The worker address the edge chose, from the dev-only X-Voicefleet-Upstream response header."""
    assert ws.response is not None
    value = ws.response.headers.get("X-Voicefleet-Upstream", "")
    # After a failover nginx lists every address it tried ("a:1, b:2"); the last one answered.
    return value.split(",")[-1].strip()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll an async condition until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
