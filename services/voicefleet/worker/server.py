"""Serving the worker with uvicorn, and draining it on SIGTERM.

uvicorn's own shutdown closes every socket at once (1012). A voice session deserves better: on the first SIGTERM
the worker reports not-ready immediately, stops taking sessions, and hands each live session over at its next
turn boundary (`fleet.migrate`, then 1012) so the client resumes elsewhere; uvicorn shuts down when no session is
left or the drain timeout passes. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from voicefleet.config import Settings
from voicefleet.worker.app import WorkerState


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def uvicorn_config(
    app: Starlette, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=settings.port if port is None else port,
        loop=loop_name(),
        ws="websockets-sansio",  # the sans-I/O implementation; the legacy one is deprecated
        ws_max_size=settings.max_frame_bytes,  # larger frames close with 1009
        ws_per_message_deflate=False,  # base64 audio barely compresses; deflate would only cost CPU
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
    )


class WorkerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: WorkerState) -> None:
        super().__init__(config)
        self.state = state
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining or not self.state.sessions:
            super().handle_exit(sig, frame)
            return
        # Runs in the signal handler: only flip the flag (readiness fails from now on); the loop does the rest.
        self.state.draining = True

    async def on_tick(self, counter: int) -> bool:
        if self.state.draining and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain())
        return await super().on_tick(counter)

    async def _drain(self) -> None:
        started = time.monotonic()
        self.state.begin_drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.state.no_sessions.wait(), self.state.settings.drain_timeout_s)
        self.state.metrics.drain_duration.observe(time.monotonic() - started)
        self.state.log.info(
            "drained", seconds=round(time.monotonic() - started, 3), sessions_left=len(self.state.sessions)
        )
        self.should_exit = True
