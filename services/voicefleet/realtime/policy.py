"""The operator's session policy: what every session starts with, and what a client may change.

The policy is applied upstream as a GA `session.update` before any client event. Server-side instructions and
tools are the operator's: they are hidden from the client in `session.created/updated` (unless configured
otherwise), a client cannot remove server tools, and locked fields cannot be replaced. A refused update gets an
`error` and, as OpenAI does with invalid updates, is discarded whole.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voicefleet.realtime.events import error_event

LOCKED_CODE = "locked_parameter"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class PolicyDefaults:
    instructions: str
    voice: str
    vad_threshold: float
    vad_prefix_padding_ms: int
    vad_silence_duration_ms: int
    input_transcription_model: str = ""


def default_session(defaults: PolicyDefaults, tools: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The seed's session in GA shape: audio/pcm 24 kHz both ways, server VAD, the configured voice."""
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": defaults.instructions,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": defaults.vad_threshold,
                    "prefix_padding_ms": defaults.vad_prefix_padding_ms,
                    "silence_duration_ms": defaults.vad_silence_duration_ms,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": defaults.voice},
        },
    }
    if defaults.input_transcription_model:
        session["audio"]["input"]["transcription"] = {"model": defaults.input_transcription_model}
    if tools:
        session["tools"] = [dict(t) for t in tools]
        session["tool_choice"] = "auto"
    return session


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    session: dict[str, Any]
    locked_fields: tuple[str, ...] = ("instructions",)
    expose_server_policy: bool = False

    @property
    def server_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.session.get("tools", [])
        return tools

    @property
    def server_tool_names(self) -> frozenset[str]:
        return frozenset(str(t.get("name")) for t in self.server_tools)

    def initial_update(self, event_id: str) -> dict[str, Any]:
        return {"type": "session.update", "event_id": event_id, "session": copy.deepcopy(self.session)}

    def check_client_update(
        self, event: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(event to send upstream, None) when allowed, else (None, error event for the client)."""
        session = event.get("session")
        client_event_id = event.get("event_id")
        if not isinstance(session, dict):
            return event, None  # malformed: the upstream answers it exactly as OpenAI would
        for dotted in self.locked_fields:
            if dotted == "tools":
                continue
            value = _get_path(session, dotted)
            if value is not _MISSING and value != _get_path(self.session, dotted):
                return None, error_event(
                    LOCKED_CODE,
                    f"The session policy does not allow changing 'session.{dotted}'.",
                    param=f"session.{dotted}",
                    event_id=client_event_id,
                )
        if "tools" not in session or not self.server_tools:
            return event, None
        client_tools = session["tools"]
        if "tools" in self.locked_fields:
            return None, error_event(
                LOCKED_CODE,
                "The session policy does not allow changing 'session.tools'.",
                param="session.tools",
                event_id=client_event_id,
            )
        if not isinstance(client_tools, list):
            return event, None
        server_names = self.server_tool_names
        for index, tool in enumerate(client_tools):
            if isinstance(tool, dict) and tool.get("name") in server_names:
                return None, error_event(
                    LOCKED_CODE,
                    f"Tool '{tool.get('name')}' is provided by the server and cannot be replaced or removed.",
                    param=f"session.tools[{index}]",
                    event_id=client_event_id,
                )
        # The client's tools are added to the server's: a client cannot remove server tools by omitting them.
        merged = dict(event)
        merged["session"] = {**session, "tools": [*self.server_tools, *client_tools]}
        return merged, None

    def redact(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session as the client may see it: without the operator's instructions and server tools."""
        if self.expose_server_policy:
            return session
        shown = dict(session)
        if shown.get("instructions") == self.session.get("instructions"):
            shown["instructions"] = ""
        tools = shown.get("tools")
        if isinstance(tools, list) and self.server_tools:
            names = self.server_tool_names
            shown["tools"] = [t for t in tools if not (isinstance(t, dict) and t.get("name") in names)]
        return shown

    def output_bytes_per_ms(self, session: dict[str, Any]) -> float:
        """48 bytes per ms for PCM16 at 24 kHz; 8 for G.711 (µ-law/A-law at 8 kHz)."""
        fmt = _get_path(session, "audio.output.format.type")
        return 8.0 if fmt in ("audio/pcmu", "audio/pcma") else 48.0
