"""Fixtures: a simulator served in-process by uvicorn on a free loopback port, and a sans-I/O session driver."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import uvicorn

from voicefleet.audio.pcm import tone
from voicefleet.simulator.app import create_app
from voicefleet.simulator.config import SimulatorConfig
from voicefleet.simulator.session import CloseConnection, Output, SimulatorSession


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_simulator(config: SimulatorConfig) -> AsyncIterator[str]:
    """Yields "127.0.0.1:PORT" once the server listens; stops it on exit."""
    port = free_port()
    uv_config = uvicorn.Config(
        create_app(config), host="127.0.0.1", port=port, ws="websockets", ws_per_message_deflate=False,
        log_level="warning", lifespan="on",
    )  # fmt: skip
    with warnings.catch_warnings():
        # uvicorn announces that its legacy `websockets` implementation will be renamed; not our concern here.
        warnings.simplefilter("ignore", UserWarning)
        uv_config.load()
    server = uvicorn.Server(uv_config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(15):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class SessionDriver:
    """Drives a SimulatorSession with a fake clock: send events, advance time, collect what comes out."""

    def __init__(
        self, config: SimulatorConfig | None = None, synthesize: Callable[[str], bytes] | None = None
    ):
        self.now = 0.0
        self.recorded: list[dict[str, Any]] = []
        self.session = SimulatorSession(
            config or SimulatorConfig(),
            model="gpt-realtime",
            now=self.now,
            synthesize=synthesize or (lambda text: tone(40 * len(text))),
            rng=random.Random(7),
            record=self.recorded.append,
        )

    def send(self, event: dict[str, Any] | str) -> list[Output]:
        self.session.receive_text(event if isinstance(event, str) else orjson.dumps(event).decode(), self.now)
        return self.session.drain(self.now)

    def advance(self, seconds: float) -> list[Output]:
        self.now += seconds
        return self.session.drain(self.now)

    def run_until_idle(self, limit_s: float = 120.0) -> list[Output]:
        """Advance deadline by deadline until nothing is scheduled before `limit_s` of fake time."""
        out: list[Output] = []
        horizon = self.now + limit_s
        while True:
            deadline = self.session.next_deadline()
            if deadline is None or deadline > horizon or self.session.closed:
                return out
            self.now = max(self.now, deadline)
            out.extend(self.session.drain(self.now))


def types(outputs: list[Output]) -> list[str]:
    return [o["type"] if not isinstance(o, CloseConnection) else f"close:{o.code}" for o in outputs]


def of_type(outputs: list[Output], name: str) -> list[dict[str, Any]]:
    return [o for o in outputs if not isinstance(o, CloseConnection) and o["type"] == name]


def step_until(driver: SessionDriver, event_type: str, limit_s: float = 120.0) -> list[Output]:
    """Advance deadline by deadline until an event of `event_type` comes out; fails if it never does."""
    out: list[Output] = []
    horizon = driver.now + limit_s
    while not of_type(out, event_type):
        deadline = driver.session.next_deadline()
        assert deadline is not None and deadline <= horizon, f"no {event_type} within {limit_s} s"
        driver.now = max(driver.now, deadline)
        out.extend(driver.session.drain(driver.now))
    return out
