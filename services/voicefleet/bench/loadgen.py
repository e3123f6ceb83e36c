"""The load generator: K concurrent Realtime sessions, each speaking real speech at real-time pace.

Each session sends one `session.update` (server VAD, the seed's 500 ms silence), waits for `session.updated`,
then loops turns: the speech fixture in 20 ms `input_audio_buffer.append` frames, then 20 ms silence frames
until `response.done` arrives (like a microphone that keeps streaming), then a short pause of silence. Every
append has an `event_id` of the form `<tag><session>-<seq>` so a simulator's event log can say when each frame arrived.

Frames are pre-built bytes sent as text frames: the generator must stay cheap enough not to be what is
measured.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

FRAME_MS = 20
FRAME_BYTES = 48 * FRAME_MS  # PCM16 24 kHz mono: 48 bytes per millisecond
# If the event loop falls this far behind the real-time schedule, restart the schedule instead of bursting.
_MAX_LAG_S = 0.1
_SESSION_UPDATE = orjson.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
        },
    }
)
_TYPE_PREFIX = b'{"type":"'
_DELTA = "response.output_audio.delta"


@dataclass(frozen=True, slots=True)
class SpeechTurn:
    """One turn of audio, pre-encoded: base64 of each 20 ms speech chunk and of one 20 ms silence chunk."""

    speech: tuple[bytes, ...]
    silence: bytes
    pause_frames: int = 10  # silence after response.done before the next turn speaks

    @classmethod
    def from_pcm(cls, pcm: bytes) -> SpeechTurn:
        padded = pcm + b"\x00" * (-len(pcm) % FRAME_BYTES)
        chunks = tuple(
            base64.b64encode(padded[i : i + FRAME_BYTES]) for i in range(0, len(padded), FRAME_BYTES)
        )
        return cls(speech=chunks, silence=base64.b64encode(b"\x00" * FRAME_BYTES))


@dataclass(frozen=True, slots=True)
class LoadPlan:
    url: str
    sessions: int
    duration_s: float
    api_key: str = "bench"
    turns: int | None = None
    """Stop each session after this many turns (None: run until duration_s)."""
    idle: bool = False
    """Open the sessions and send nothing (memory per idle session)."""
    stagger: bool = True
    ramp_s: float | None = None
    """Spread of session starts (default: 20 ms per session, at most 3 s)."""
    turn_timeout_s: float = 15.0
    connect_timeout_s: float = 10.0
    tag: str = "b"

    def ramp(self) -> float:
        if not self.stagger:
            return 0.0
        return self.ramp_s if self.ramp_s is not None else min(3.0, 0.02 * self.sessions)


@dataclass(slots=True)
class TurnRecord:
    audio_end_ms: int
    stopped_at: float
    first_delta_at: float | None = None
    done_at: float | None = None


@dataclass(slots=True)
class SessionRecord:
    index: int
    sent_at: list[float] = field(default_factory=list)
    """Monotonic send time of each append, by sequence number."""
    turns: list[TurnRecord] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    events: int = 0
    audio_deltas: int = 0
    audio_delta_bytes: int = 0
    ready: bool = False
    max_lag_s: float = 0.0

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


@dataclass(slots=True)
class _Listener:
    """What the receive side tells the send side of one session."""

    record: SessionRecord
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    turn_done: asyncio.Event = field(default_factory=asyncio.Event)
    awaiting_delta: TurnRecord | None = None


def event_type(frame: bytes) -> str | None:
    """The type of a server event whose JSON starts with it (every sender here does); else None."""
    if frame.startswith(_TYPE_PREFIX):
        end = frame.find(b'"', len(_TYPE_PREFIX), 120)
        if end > 0:
            return frame[len(_TYPE_PREFIX) : end].decode()
    return None


def _count_delta(listener: _Listener, size: int, now: float) -> None:
    listener.record.audio_deltas += 1
    listener.record.audio_delta_bytes += size
    if listener.awaiting_delta is not None:
        listener.awaiting_delta.first_delta_at = now
        listener.awaiting_delta = None


def handle_event(listener: _Listener, frame: bytes, now: float) -> None:
    record = listener.record
    record.events += 1
    if event_type(frame) == _DELTA:
        # The hot path of the receive side: count and timestamp without parsing the audio.
        _count_delta(listener, len(frame), now)
        return
    event = orjson.loads(frame)
    kind = event.get("type") if isinstance(event, dict) else None
    if kind == _DELTA:  # a sender that does not put "type" first (e.g. one with spaces after colons)
        _count_delta(listener, len(frame), now)
    elif kind == "input_audio_buffer.speech_stopped":
        turn = TurnRecord(int(event.get("audio_end_ms", 0)), now)
        record.turns.append(turn)
        listener.awaiting_delta = turn
    elif kind == "response.done":
        if record.turns and record.turns[-1].done_at is None:
            record.turns[-1].done_at = now
        status = event.get("response", {}).get("status")
        if status not in ("completed", None):
            record.error(f"response_{status}")
        listener.turn_done.set()
    elif kind == "session.updated":
        listener.ready.set()
    elif kind == "error":
        code = (event.get("error") or {}).get("code") or "error"
        record.error(str(code))


async def _receive(ws: ClientConnection, listener: _Listener) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            frame = await ws.recv(decode=False)
            handle_event(listener, frame, time.monotonic())


class _Pacer:
    """Absolute 20 ms deadlines, so sleeps do not accumulate drift; a stalled loop restarts the schedule."""

    def __init__(self, record: SessionRecord) -> None:
        self.record = record
        self.origin = time.monotonic()
        self.ticks = 0

    async def wait(self) -> None:
        due = self.origin + self.ticks * FRAME_MS / 1000.0
        self.ticks += 1
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > _MAX_LAG_S:
            self.record.max_lag_s = max(self.record.max_lag_s, -delay)
            self.origin, self.ticks = time.monotonic(), 1


async def _speak(
    ws: ClientConnection, plan: LoadPlan, audio: SpeechTurn, listener: _Listener, stop_at: float
) -> None:
    record = listener.record
    prefix = b'{"type":"input_audio_buffer.append","event_id":"' + f"{plan.tag}{record.index}-".encode()
    pacer = _Pacer(record)
    seq = 0

    async def send(chunk: bytes) -> None:
        nonlocal seq
        await pacer.wait()
        frame = prefix + str(seq).encode() + b'","audio":"' + chunk + b'"}'
        record.sent_at.append(time.monotonic())
        seq += 1
        await ws.send(frame, text=True)

    turns = 0
    while time.monotonic() < stop_at and (plan.turns is None or turns < plan.turns):
        listener.turn_done.clear()
        for chunk in audio.speech:
            await send(chunk)
        give_up = time.monotonic() + plan.turn_timeout_s
        while not listener.turn_done.is_set():
            if time.monotonic() > min(give_up, stop_at + plan.turn_timeout_s):
                record.error("turn_timeout")
                break
            await send(audio.silence)
        turns += 1
        for _ in range(audio.pause_frames):
            await send(audio.silence)


async def run_session(
    plan: LoadPlan, index: int, audio: SpeechTurn, start_at: float, stop_at: float
) -> SessionRecord:
    record = SessionRecord(index)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    try:
        async with connect(
            plan.url,
            additional_headers={"Authorization": f"Bearer {plan.api_key}"},
            open_timeout=plan.connect_timeout_s,
            compression=None,
            max_size=None,
            ping_interval=None,
        ) as ws:
            listener = _Listener(record)
            receiver = asyncio.create_task(_receive(ws, listener))
            try:
                if plan.idle:
                    record.ready = True
                    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
                else:
                    await ws.send(_SESSION_UPDATE, text=True)
                    await asyncio.wait_for(listener.ready.wait(), plan.connect_timeout_s)
                    record.ready = True
                    await _speak(ws, plan, audio, listener, stop_at)
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
            if ws.close_code not in (None, 1000):
                record.error(f"close_{ws.close_code}")
    except websockets.ConnectionClosed as exc:
        record.error(f"close_{exc.rcvd.code if exc.rcvd else 1006}")
    except TimeoutError:
        record.error("timeout" if record.ready else "connect_timeout")
    except (OSError, websockets.InvalidHandshake, websockets.InvalidURI):
        record.error("connect_failed")
    return record


async def run_load(plan: LoadPlan, audio: SpeechTurn, begin_at: float | None = None) -> list[SessionRecord]:
    """Run every session of the plan; returns when all have stopped (bounded by duration plus timeouts)."""
    begin = begin_at if begin_at is not None else time.monotonic()
    ramp = plan.ramp()
    stop_at = begin + ramp + plan.duration_s
    tasks = [
        run_session(plan, i, audio, begin + ramp * i / max(1, plan.sessions), stop_at)
        for i in range(plan.sessions)
    ]
    bound = ramp + plan.duration_s + plan.turn_timeout_s + 2 * plan.connect_timeout_s
    return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=bound))
