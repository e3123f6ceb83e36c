"""The default conversation: ordered items, their audio, and how much assistant audio was sent per item."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

from voicefleet.simulator.protocol import ProtocolError


@dataclass(slots=True)
class StoredItem:
    item: dict[str, Any]
    """The item as the client sees it, without audio bytes."""
    audio: bytearray = field(default_factory=bytearray)
    """Audio of the item in its wire format (user input or assistant output)."""
    audio_ms: float = 0.0
    """Duration of `audio`: for assistant items, how much was actually sent (what truncate is checked against)."""


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """A copy without audio payloads, as `conversation.item.added/done` carry it."""
    clean = copy.deepcopy(item)
    for part in clean.get("content") or []:
        if isinstance(part, dict):
            part.pop("audio", None)
    return clean


class Conversation:
    def __init__(self) -> None:
        self._order: list[str] = []
        self._items: dict[str, StoredItem] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._order)

    def last_id(self) -> str | None:
        return self._order[-1] if self._order else None

    def insert(self, stored: StoredItem, previous_item_id: str | None = None) -> str | None:
        """Add after `previous_item_id` ("root" = first; None = last); returns the id of the item before it."""
        item_id = stored.item["id"]
        if previous_item_id is None:
            position = len(self._order)
        elif previous_item_id == "root":
            position = 0
        elif previous_item_id in self._items:
            position = self._order.index(previous_item_id) + 1
        else:
            raise ProtocolError(
                "invalid_value",
                f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
                "previous_item_id",
            )
        self._order.insert(position, item_id)
        self._items[item_id] = stored
        return self._order[position - 1] if position > 0 else None

    def get(self, item_id: str, action: str) -> StoredItem:
        stored = self._items.get(item_id)
        if stored is None:
            raise ProtocolError(
                f"item_{action}_invalid_item_id",
                f"Error {action}ing item: the item with id '{item_id}' does not exist.",
                "item_id",
            )
        return stored

    def delete(self, item_id: str) -> None:
        self.get(item_id, "delete")
        self._order.remove(item_id)
        del self._items[item_id]

    def items(self) -> list[StoredItem]:
        return [self._items[item_id] for item_id in self._order]

    def retrieved(self, item_id: str, audio_format_type: str) -> dict[str, Any]:
        """The item with its audio, base64-encoded (for `conversation.item.retrieved`)."""
        stored = self.get(item_id, "retrieve")
        item = copy.deepcopy(stored.item)
        if stored.audio:
            for part in item.get("content") or []:
                if part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(bytes(stored.audio)).decode()
                    part.setdefault("format", {"type": audio_format_type})
        return item
