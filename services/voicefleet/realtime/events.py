"""Realtime event names, cheap frame inspection, and OpenAI-shaped error events.

The relay sees thousands of audio frames per second per core, so it avoids parsing JSON where it can: the `type`
of a frame is read from its first bytes when the frame starts with it (OpenAI and the official SDKs always put it
first), and only then is the frame parsed, if the event needs it at all.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

import orjson

# Client -> server event types the GA server accepts (verbatim list from its own `invalid_value` error).
CLIENT_EVENT_TYPES: Final = (
    "session.update",
    "session.close",
    "input_audio_buffer.append",
    "session.input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)
CLIENT_EVENT_SET: Final = frozenset(CLIENT_EVENT_TYPES)

# Extensions carry this prefix, which no OpenAI event uses.
FLEET_PREFIX: Final = "fleet."

AUDIO_APPEND: Final = "input_audio_buffer.append"
AUDIO_DELTA: Final = "response.output_audio.delta"

# Prefix of event_ids the worker puts on events it originates upstream, so their replies can be told apart.
INTERNAL_EVENT_PREFIX: Final = "fleet_"

_TYPE_PREFIXES: Final = (b'{"type":"', b'{"type": "')


def new_event_id(prefix: str = "event_") -> str:
    return prefix + secrets.token_hex(10)


def peek_type(frame: str | bytes) -> str | None:
    """The event type when the frame starts with it, else None (the caller then parses the frame)."""
    head = frame[:80].encode() if isinstance(frame, str) else frame[:80]
    for prefix in _TYPE_PREFIXES:
        if head.startswith(prefix):
            start = len(prefix)
            end = head.find(b'"', start)
            if end > start:
                return head[start:end].decode()
    return None


def string_field(frame: str, name: str, limit: int = 400) -> str | None:
    """Read a short top-level string field (e.g. item_id) from the head of a frame without parsing the rest.

    Used on audio deltas, whose ids come before the large `delta` field. Returns None when not found in the head;
    the caller then falls back to a full parse.
    """
    key = f'"{name}":"'
    start = frame.find(key, 0, limit)
    if start < 0:
        return None
    start += len(key)
    end = frame.find('"', start, start + 200)
    return frame[start:end] if end > 0 else None


def base64_field_length(frame: str, name: str) -> int | None:
    """Length in characters of a trailing base64 string field, found without parsing (None if not found)."""
    key = f'"{name}":"'
    start = frame.rfind(key)
    if start < 0:
        return None
    start += len(key)
    end = frame.find('"', start)
    return end - start if end >= 0 else None


def dumps(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def error_event(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An `error` server event exactly as OpenAI shapes it (REALTIME_PROTOCOL.md §6.1)."""
    return {
        "type": "error",
        "event_id": new_event_id(),
        "error": {"type": error_type, "code": code, "message": message, "param": param, "event_id": event_id},
    }


def unknown_type_message(value: str) -> str:
    supported = ", ".join(f"'{t}'" for t in CLIENT_EVENT_TYPES[:-1])
    return f"Invalid value: '{value}'. Supported values are: {supported}, and '{CLIENT_EVENT_TYPES[-1]}'."
