"""The conversation as the fleet remembers it: enough to rebuild a session on a fresh upstream.

OpenAI keeps no state across sockets, and assistant audio cannot be re-inserted, so what survives is text: user
transcripts or text, assistant transcripts (cut where the user interrupted), function calls and their outputs.
Records are small dicts so a store can persist them as they are.
"""

from __future__ import annotations

from typing import Any


def _text_of(item: dict[str, Any]) -> str:
    parts: list[str] = []
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        text = part.get("text") if part.get("text") is not None else part.get("transcript")
        if isinstance(text, str):
            parts.append(text)
    return " ".join(p for p in parts if p)


class ConversationLog:
    """Ordered conversation items, updated from upstream events; no I/O."""

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        for record in records or []:
            self._items[record["id"]] = dict(record)

    def __len__(self) -> int:
        return len(self._items)

    def records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._items.values()]

    def item_done(self, item: dict[str, Any]) -> bool:
        """Record a final item; False for kinds that cannot be replayed as text (they are not kept)."""
        item_id = item.get("id")
        kind = item.get("type")
        if not isinstance(item_id, str):
            return False
        record: dict[str, Any]
        if kind == "message":
            role = item.get("role", "user")
            previous = self._items.get(item_id, {})
            text = _text_of(item) or previous.get("text", "")
            record = {"id": item_id, "type": "message", "role": role, "text": text}
            if "audio_end_ms" in previous:
                record["audio_end_ms"] = previous["audio_end_ms"]
        elif kind == "function_call":
            record = {
                "id": item_id,
                "type": "function_call",
                "call_id": item.get("call_id"),
                "name": item.get("name"),
                "arguments": item.get("arguments", ""),
            }
        elif kind == "function_call_output":
            record = {
                "id": item_id,
                "type": "function_call_output",
                "call_id": item.get("call_id"),
                "output": item.get("output", ""),
            }
        else:
            return False  # MCP and future item kinds are not replayable as text
        self._items[item_id] = record
        return True

    def transcript(self, item_id: str, text: str) -> bool:
        """The user's words, which arrive after their item; True when they were recorded."""
        record = self._items.get(item_id)
        if record is None or record.get("text"):
            return False
        record["text"] = text
        return True

    def truncated(self, item_id: str, audio_end_ms: int, total_ms: float | None) -> None:
        """Keep the part of an assistant transcript the user heard (proportional to the audio played)."""
        record = self._items.get(item_id)
        if record is None:
            return
        record["audio_end_ms"] = audio_end_ms
        text = record.get("text", "")
        if text and total_ms and total_ms > 0:
            keep = max(0, min(len(text), int(len(text) * audio_end_ms / total_ms)))
            record["text"] = text[:keep].rstrip() + ("…" if keep < len(text) else "")

    def deleted(self, item_id: str) -> None:
        self._items.pop(item_id, None)

    def replay_items(self) -> list[dict[str, Any]]:
        """GA `conversation.item.create` items (text content) that rebuild the conversation upstream."""
        items: list[dict[str, Any]] = []
        for record in self._items.values():
            kind = record["type"]
            if kind == "message":
                text = record.get("text") or ""
                if not text:
                    continue
                role = record["role"]
                part_type = "output_text" if role == "assistant" else "input_text"
                items.append(
                    {"type": "message", "role": role, "content": [{"type": part_type, "text": text}]}
                )
            elif kind == "function_call":
                items.append(
                    {
                        "type": "function_call",
                        "call_id": record["call_id"],
                        "name": record["name"],
                        "arguments": record["arguments"],
                    }
                )
            elif kind == "function_call_output":
                items.append(
                    {"type": "function_call_output", "call_id": record["call_id"], "output": record["output"]}
                )
        return items
