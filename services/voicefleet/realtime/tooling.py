"""Server-side tool calls inside a response, without the client's help.

The model asks for a tool in a response; the worker runs it, adds a `function_call_output` item, and once the
response is done and every call of that response has an output, asks for the next response with one
`response.create` (asking earlier fails with `conversation_already_has_active_response`). Calls the worker does
not own are the client's and pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicefleet.realtime.events import INTERNAL_EVENT_PREFIX, new_event_id


@dataclass(slots=True)
class ResponseCalls:
    pending: set[str] = field(default_factory=set)
    finished: int = 0
    response_done: bool = False


class ToolCoordinator:
    """Tracks server tool calls per response; no I/O, no clock."""

    def __init__(self, tool_names: frozenset[str]) -> None:
        self.tool_names = tool_names
        self._responses: dict[str, ResponseCalls] = {}
        self._response_of_call: dict[str, str] = {}
        self._started: set[str] = set()
        # Item ids of server-tool calls and of the outputs the worker created: hidden from the client.
        self.hidden_items: set[str] = set()

    def owns(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.tool_names

    def call_requested(self, response_id: str, item_id: str, call_id: str) -> bool:
        """Record a server tool call; False if it was already started (both `arguments.done` and `response.done`
        name the call, so the second sighting must not run it again)."""
        self.hidden_items.add(item_id)
        if call_id in self._started:
            return False
        self._started.add(call_id)
        self._responses.setdefault(response_id, ResponseCalls()).pending.add(call_id)
        self._response_of_call[call_id] = response_id
        return True

    def output_event(self, call_id: str, output: str) -> dict[str, Any]:
        item_id = f"{INTERNAL_EVENT_PREFIX}out_{call_id[-16:]}"
        self.hidden_items.add(item_id)
        return {
            "type": "conversation.item.create",
            "event_id": new_event_id(INTERNAL_EVENT_PREFIX),
            "item": {"id": item_id, "type": "function_call_output", "call_id": call_id, "output": output},
        }

    def call_finished(self, call_id: str) -> str | None:
        """Mark a call finished; the response id whose follow-up can now be requested, if any."""
        response_id = self._response_of_call.pop(call_id, None)
        if response_id is None:
            return None
        calls = self._responses[response_id]
        calls.pending.discard(call_id)
        calls.finished += 1
        return self._ready(response_id)

    def response_done(self, response_id: str) -> str | None:
        calls = self._responses.get(response_id)
        if calls is None:
            return None
        calls.response_done = True
        return self._ready(response_id)

    def _ready(self, response_id: str) -> str | None:
        calls = self._responses[response_id]
        if calls.response_done and not calls.pending and calls.finished:
            del self._responses[response_id]
            return response_id
        return None

    @property
    def busy(self) -> bool:
        return bool(self._response_of_call)
