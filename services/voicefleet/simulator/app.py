"""The simulator's web app: thin WebSocket I/O around SimulatorSession, plus health and the event record."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicefleet.simulator.admission import accepted_subprotocol, refusal
from voicefleet.simulator.config import SimulatorConfig
from voicefleet.simulator.protocol import new_id
from voicefleet.simulator.recorder import EventRecorder
from voicefleet.simulator.session import CloseConnection, SimulatorSession
from voicefleet.simulator.voice import ReplyVoice

_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)


class SimulatorState:
    """Everything the app's sessions share: settings, the reply voice cache, the latency RNG, the record."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.voice = ReplyVoice(use_speech=config.speech)
        self.rng = random.Random(config.seed)
        self.recorder = EventRecorder(
            config.event_log,
            events_per_session=config.recorded_events_per_session,
            max_sessions=config.recorded_sessions,
        )
        self.active_sessions = 0


async def _serve_session(websocket: WebSocket, state: SimulatorState, model: str) -> None:
    loop = asyncio.get_running_loop()
    session_id = new_id("sess_")
    session = SimulatorSession(
        state.config, model=model, now=loop.time(), synthesize=state.voice, rng=state.rng,
        record=state.recorder.sink(session_id, model), session_id=session_id,
    )  # fmt: skip
    inbox: asyncio.Queue[Message] = asyncio.Queue()

    async def read() -> None:
        while True:
            message = await websocket.receive()
            await inbox.put(message)
            if message["type"] == "websocket.disconnect":
                return

    reader = asyncio.create_task(read())
    try:
        while True:
            for output in session.drain(loop.time()):
                if isinstance(output, CloseConnection):
                    await websocket.close(output.code, output.reason)
                    return
                await websocket.send_text(orjson.dumps(output).decode())
            deadline = session.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                message = await asyncio.wait_for(inbox.get(), timeout)
            except TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                session.receive_text(message["text"], loop.time())
            else:
                session.receive_binary(loop.time())
    except _SEND_ERRORS:
        return  # the client went away mid-send; nothing to tell it
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, *_SEND_ERRORS):
            await reader


def create_app(config: SimulatorConfig) -> Starlette:
    state = SimulatorState(config)

    async def realtime(websocket: WebSocket) -> None:
        subprotocols = [
            p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p
        ]
        refused = refusal(
            api_key=config.api_key, headers=websocket.headers, query=websocket.query_params,
            subprotocols=subprotocols,
        )  # fmt: skip
        await websocket.accept(subprotocol=accepted_subprotocol(subprotocols))
        if refused is not None:
            with contextlib.suppress(*_SEND_ERRORS):
                await websocket.send_text(orjson.dumps(refused.error).decode())
                await websocket.close(refused.close_code, refused.reason)
            return
        state.active_sessions += 1
        try:
            await _serve_session(websocket, state, websocket.query_params["model"])
        finally:
            state.active_sessions -= 1

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "sessions": state.active_sessions, "profile": config.profile})

    async def sessions(request: Request) -> JSONResponse:
        wanted = request.query_params.get("session_id")
        snapshot = state.recorder.snapshot()
        if wanted:
            snapshot = [entry for entry in snapshot if entry["session_id"] == wanted]
        return JSONResponse({"sessions": snapshot})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Synthesize the replies known in advance off the event loop, so the first turns do not wait on espeak.
        texts = [config.scenario.default_reply]
        texts += [t.say for t in config.scenario.turns if t.say and "{" not in t.say]
        for text in texts:
            await asyncio.to_thread(state.voice, text)
        yield
        state.recorder.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/realtime", realtime),
            WebSocketRoute("/v1/realtime/", realtime),
            Route("/healthz", healthz),
            Route("/v1/_simulator/sessions", sessions),
        ],
        lifespan=lifespan,
    )
    app.state.simulator = state
    app.state.recorder = state.recorder
    return app
