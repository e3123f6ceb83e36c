"""The last server events of a session, numbered, for replay to a client that resumes after a blip.

Bounded twice: by count, and by bytes, because reply audio dominates (base64 PCM16 at 24 kHz is 64 KB per second
of speech) and an hour-long session must not hold more than a few seconds' worth of memory for a resume.
"""

from __future__ import annotations

from collections import deque


class EventRing:
    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[tuple[int, str]] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._events)

    def append(self, seq: int, frame: str) -> None:
        self._events.append((seq, frame))
        self.bytes += len(frame)
        while self._events and (len(self._events) > self.max_events or self.bytes > self.max_bytes):
            _, dropped = self._events.popleft()
            self.bytes -= len(dropped)

    def since(self, last_seq: int) -> tuple[list[str], bool]:
        """Frames after `last_seq`, oldest first, and whether some after it were already dropped."""
        frames = [frame for seq, frame in self._events if seq > last_seq]
        gap = bool(self._events) and self._events[0][0] > last_seq + 1
        return frames, gap
