"""Validation of items sent with `conversation.item.create` (GA shapes, REALTIME_PROTOCOL.md §2)."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any, Final

from voicefleet.audio.formats import bytes_per_ms
from voicefleet.simulator.conversation import Conversation, StoredItem
from voicefleet.simulator.protocol import (
    ProtocolError,
    invalid_type,
    invalid_value,
    missing_parameter,
    new_id,
)

ITEM_TYPES: Final = ("message", "function_call", "function_call_output")
ROLES: Final = ("user", "assistant", "system")
_CONTENT_TYPES: Final = {
    "user": ("input_text", "input_audio", "input_image"),
    "system": ("input_text",),
    "assistant": ("output_text", "output_audio"),
}


def validate_item(raw: Any, conversation: Conversation, input_format: str) -> StoredItem:
    """A stored copy of a client item, with id, object and status filled in as the server does."""
    if raw is None:
        raise missing_parameter("item")
    if not isinstance(raw, dict):
        raise invalid_type("item", "an object")
    item = copy.deepcopy(raw)
    kind = item.get("type")
    if kind is None:
        raise missing_parameter("item.type")
    if kind not in ITEM_TYPES:
        raise invalid_value("item.type", kind, ITEM_TYPES)
    item_id = item.get("id") or new_id("item_")
    if item_id in conversation:
        raise ProtocolError("invalid_value", f"Item with id '{item_id}' already exists.", "item.id")
    item.update({"id": item_id, "object": "realtime.item", "status": "completed"})
    audio = bytearray()
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise missing_parameter("item.role")
        if role not in ROLES:
            raise invalid_value("item.role", role, ROLES)
        content = item.get("content")
        if not isinstance(content, list):
            raise missing_parameter("item.content")
        for index, part in enumerate(content):
            path = f"item.content[{index}]"
            if not isinstance(part, dict):
                raise invalid_type(path, "an object")
            if part.get("type") not in _CONTENT_TYPES[role]:
                raise invalid_value(f"{path}.type", part.get("type"), _CONTENT_TYPES[role])
            if part.get("type") == "output_audio" and part.get("audio"):
                raise ProtocolError(
                    "invalid_value", "Assistant audio messages cannot be created.", f"{path}.audio"
                )
            if part.get("type") == "input_audio" and part.get("audio"):
                try:
                    audio.extend(base64.b64decode(part["audio"], validate=True))
                except (binascii.Error, ValueError, TypeError):
                    raise ProtocolError(
                        "invalid_value",
                        f"Invalid '{path}.audio'. Expected base64-encoded audio bytes.",
                        f"{path}.audio",
                    ) from None
    elif kind == "function_call":
        for key in ("call_id", "name"):
            if not isinstance(item.get(key), str):
                raise missing_parameter(f"item.{key}")
        item.setdefault("arguments", "")
    else:
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise missing_parameter(f"item.{key}")
    return StoredItem(item=item, audio=audio, audio_ms=len(audio) / bytes_per_ms(input_format))
