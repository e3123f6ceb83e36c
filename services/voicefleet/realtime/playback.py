"""What the user has actually heard: a model of the client's audio playback.

OpenAI generates audio faster than real time, so by the time the user interrupts, the client usually holds
seconds of audio it has not played. Truncating at "what was generated" makes the model believe it said things the
user never heard; truncating at wall-clock time since the first delta overshoots when several items queue up.
This tracker models playback as one queue: items play back to back in the order their audio was sent, starting
when the first of them was sent. A client that reports `fleet.playback` {item_id, played_ms} anchors the model at
that point; between reports, playback is assumed to continue in real time. Every estimate is clamped to the
audio actually sent for that item, as the server rejects truncation past the end of an item's audio.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ItemAudio:
    item_id: str
    sent_ms: float = 0.0


@dataclass(slots=True)
class PlaybackAck:
    item_id: str
    played_ms: float
    at: float


class PlaybackTracker:
    """Per-session model of audio sent to the client and how much of it has played. No clock inside."""

    def __init__(self, bytes_per_ms: float = 48.0) -> None:
        self.bytes_per_ms = bytes_per_ms
        self._queue: list[ItemAudio] = []
        self._by_id: dict[str, ItemAudio] = {}
        self._started_at = 0.0
        self._ack: PlaybackAck | None = None
        self.acks_seen = False
        # Audio sent per item, kept after the queue is cleared: truncation events arrive after the interruption.
        self.history: dict[str, float] = {}

    # ---- inputs -------------------------------------------------------------------------------------------
    def audio_sent(self, item_id: str, nbytes: int, now: float) -> None:
        item = self._by_id.get(item_id)
        if item is None:
            if not self._queue or self._drained(now):
                # Everything queued before has finished playing: a new playback run starts with this item.
                self._reset(now)
            item = ItemAudio(item_id)
            self._queue.append(item)
            self._by_id[item_id] = item
        item.sent_ms += nbytes / self.bytes_per_ms
        self.history[item_id] = item.sent_ms
        if len(self.history) > 256:
            del self.history[next(iter(self.history))]

    def acknowledge(self, item_id: str, played_ms: float, now: float) -> None:
        """A client playback report; ignored for items no longer queued (reports can arrive late)."""
        self.acks_seen = True
        item = self._by_id.get(item_id)
        if item is None:
            return
        self._ack = PlaybackAck(item_id, max(0.0, min(float(played_ms), item.sent_ms)), now)

    def clear(self, now: float) -> None:
        """The client dropped its buffered audio (after an interruption)."""
        self._reset(now)

    # ---- queries ------------------------------------------------------------------------------------------
    def sent_ms(self, item_id: str) -> float | None:
        item = self._by_id.get(item_id)
        return None if item is None else item.sent_ms

    def played(self, now: float) -> list[tuple[ItemAudio, float]]:
        """Each queued item with the milliseconds of it the user has heard by `now`."""
        if not self._queue:
            return []
        ack = self._ack
        budget: float
        start_index = 0
        result: list[tuple[ItemAudio, float]] = []
        if ack is not None and ack.item_id in self._by_id:
            start_index = next(i for i, it in enumerate(self._queue) if it.item_id == ack.item_id)
            result.extend((it, it.sent_ms) for it in self._queue[:start_index])
            # The report says where playback stood at ack.at; it went on in real time since then.
            budget = ack.played_ms + max(0.0, now - ack.at) * 1000.0
        else:
            budget = max(0.0, now - self._started_at) * 1000.0
        for it in self._queue[start_index:]:
            heard = min(it.sent_ms, budget)
            result.append((it, heard))
            budget -= heard
        return result

    def has_unplayed(self, now: float) -> bool:
        return any(heard < item.sent_ms for item, heard in self.played(now))

    def truncation_plan(self, now: float) -> list[tuple[str, int]]:
        """(item_id, audio_end_ms) for every queued item the user has not heard in full, in queue order.

        The item playing now is cut at the heard position; items queued after it were never heard (cut at 0).
        Items heard in full need no truncation.
        """
        plan: list[tuple[str, int]] = []
        for item, heard in self.played(now):
            if heard < item.sent_ms:
                # Round down: claiming the user heard a partial millisecond more than played is the worse error.
                plan.append((item.item_id, int(heard)))
        return plan

    # ---- internals ----------------------------------------------------------------------------------------
    def _drained(self, now: float) -> bool:
        return all(heard >= item.sent_ms for item, heard in self.played(now))

    def _reset(self, now: float) -> None:
        self._queue = []
        self._by_id = {}
        self._ack = None
        self._started_at = now
