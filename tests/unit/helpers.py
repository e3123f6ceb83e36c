"""Builders for driving the session core without sockets."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from voicefleet.realtime.actions import Action, CloseClient, SendClient, SendUpstream
from voicefleet.realtime.limits import SessionLimits
from voicefleet.realtime.policy import PolicyDefaults, SessionPolicy, default_session
from voicefleet.realtime.session import RealtimeSession, SessionIdentity

DEFAULTS = PolicyDefaults("Be brief.", "marin", 0.5, 300, 500)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}


def make_session(
    *,
    tools: list[dict[str, Any]] | None = None,
    limits: SessionLimits | None = None,
    now: float = 0.0,
    **policy: Any,
) -> RealtimeSession:
    return RealtimeSession(
        SessionIdentity("vf_test", "token-1"),
        SessionPolicy(default_session(DEFAULTS, tools or []), **policy),
        limits or SessionLimits(),
        now,
    )


def frame(event_type: str, **fields: Any) -> str:
    return orjson.dumps({"type": event_type, **fields}).decode()


def session_obj(**overrides: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "type": "realtime",
        "id": "sess_up",
        "instructions": "Be brief.",
        "audio": {
            "input": {"turn_detection": {"type": "server_vad", "interrupt_response": True}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
        "tools": [],
    }
    session.update(overrides)
    return session


def ready(core: RealtimeSession, now: float = 0.0, **session: Any) -> list[Action]:
    """Take a new core through session.created -> policy update -> session.updated."""
    out = core.upstream_text(frame("session.created", event_id="e1", session=session_obj()), now)
    out += core.upstream_text(frame("session.updated", event_id="e2", session=session_obj(**session)), now)
    return out


def to_client(actions: list[Action]) -> list[dict[str, Any]]:
    return [orjson.loads(a.frame) for a in actions if isinstance(a, SendClient)]


def to_upstream(actions: list[Action]) -> list[dict[str, Any]]:
    return [orjson.loads(a.frame) for a in actions if isinstance(a, SendUpstream)]


def closes(actions: list[Action]) -> list[CloseClient]:
    return [a for a in actions if isinstance(a, CloseClient)]


def audio_b64(ms: int) -> str:
    return base64.b64encode(b"\x01\x00" * 24 * ms).decode()


def delta(item_id: str, ms: int, response_id: str = "resp_1") -> str:
    # Field order as OpenAI sends it: ids first, the large delta last.
    return frame(
        "response.output_audio.delta",
        event_id="ev",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=audio_b64(ms),
    )
