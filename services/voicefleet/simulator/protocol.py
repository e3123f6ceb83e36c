"""Ids, the `error` event and the protocol error raised by handlers (shapes per REALTIME_PROTOCOL.md §6.1)."""

from __future__ import annotations

import secrets
import string
from typing import Any

ServerEvent = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 21) -> str:
    """An OpenAI-looking id such as ``event_`` + 21 characters. Random (not seeded) so that ids never collide
    across sessions even when a test replays items from one session into another."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def obfuscation() -> str:
    """The random padding OpenAI adds to text deltas (varying length); relays must pass it through."""
    return secrets.token_urlsafe(6)[: 2 + secrets.randbelow(8)]


def event(event_type: str, **fields: Any) -> ServerEvent:
    """A server event; every one carries its own `event_id` (type first, as OpenAI writes it)."""
    return {"type": event_type, "event_id": new_id("event_"), **fields}


def error_event(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> ServerEvent:
    return event(
        "error",
        error={
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )


class ProtocolError(Exception):
    """A client event the server refuses; becomes one `error` event and the session carries on."""

    def __init__(self, code: str | None, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def unknown_parameter(path: str) -> ProtocolError:
    return ProtocolError("unknown_parameter", f"Unknown parameter: '{path}'.", path)


def missing_parameter(path: str) -> ProtocolError:
    return ProtocolError("missing_required_parameter", f"Missing required parameter: '{path}'.", path)


def invalid_value(path: str, value: Any, supported: tuple[str, ...] | None = None) -> ProtocolError:
    message = f"Invalid value: '{value}'."
    if supported:
        message += " Supported values are: " + ", ".join(f"'{s}'" for s in supported) + "."
    return ProtocolError("invalid_value", message, path)


def invalid_type(path: str, expected: str) -> ProtocolError:
    return ProtocolError("invalid_type", f"Invalid type for '{path}': expected {expected}.", path)
