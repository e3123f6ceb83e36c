"""What the simulator received: every client event per session, in memory and optionally as JSON lines.

Other parts' tests read this to check what reached "OpenAI" (a truncate's audio_end_ms, replayed items, a tool
output). Audio payloads are replaced by their decoded byte length: the record stays small and still shows
how much audio arrived.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

Recorded = dict[str, Any]


def decoded_length(b64: str) -> int:
    """Bytes a base64 string decodes to, without decoding it."""
    return len(b64) * 3 // 4 - b64[-2:].count("=")


def strip_audio(value: Any) -> Any:
    """A copy with every string under an `audio` key replaced by its decoded length."""
    if isinstance(value, dict):
        return {
            key: decoded_length(item) if key == "audio" and isinstance(item, str) else strip_audio(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [strip_audio(item) for item in value]
    return value


class EventRecorder:
    def __init__(
        self, log_path: Path | None = None, *, events_per_session: int = 20_000, max_sessions: int = 2_000
    ) -> None:
        self._events_per_session = events_per_session
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[str, deque[Recorded]]] = OrderedDict()
        self._log: IO[bytes] | None = log_path.open("ab") if log_path is not None else None

    def sink(self, session_id: str, model: str) -> Callable[[dict[str, Any]], None]:
        """A recording function bound to one session (what SimulatorSession calls per client event)."""
        events: deque[Recorded] = deque(maxlen=self._events_per_session)
        self._sessions[session_id] = (model, events)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

        def record(event: dict[str, Any]) -> None:
            entry = {"session_id": session_id, "monotonic": time.monotonic(), "event": strip_audio(event)}
            events.append(entry)
            if self._log is not None:
                self._log.write(orjson.dumps(entry) + b"\n")
                self._log.flush()

        return record

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """The client events of one session, audio stripped, in arrival order."""
        _, events = self._sessions.get(session_id, ("", deque()))
        return [entry["event"] for entry in events]

    def session_ids(self) -> list[str]:
        return list(self._sessions)

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"session_id": session_id, "model": model, "events": list(events)}
            for session_id, (model, events) in self._sessions.items()
        ]

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
