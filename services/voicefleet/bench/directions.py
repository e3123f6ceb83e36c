"""One-way latency per direction, from the simulator's event log and the generator's own timestamps.

Both sides read CLOCK_MONOTONIC (Python's `time.monotonic` on Linux is system-wide), so on one machine a
frame's send time in the generator and its arrival time in the simulator's log are directly comparable:

- client -> upstream: arrival of append `<tag><session>-<seq>` in the simulator's log minus its send time.
- upstream -> client: the simulator emits `speech_stopped` while handling the append that completes
  `audio_end_ms` (its VAD works in 20 ms frames from offset 0, and appends are 20 ms), so the event's
  arrival at the client minus that append's arrival at the simulator is the return trip plus the simulator's handling
  of one append, which is the same on both paths and cancels in the difference.

Measured against the simulator directly and through a relay, the difference is what the relay adds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from voicefleet.bench.loadgen import FRAME_MS, SessionRecord

_APPEND = b'"type":"input_audio_buffer.append"'
_MAX_OFFSET = 5


@dataclass(frozen=True, slots=True)
class OneWay:
    client_to_upstream: list[float]
    upstream_to_client: list[float]


def read_arrivals(log_path: Path, tag: str, offset: int = 0) -> dict[str, float]:
    """event_id -> arrival time at the simulator, for the appends of this run (logged after `offset`)."""
    arrivals: dict[str, float] = {}
    if not log_path.exists():
        return arrivals
    with log_path.open("rb") as log:
        log.seek(offset)
        for line in log:
            if _APPEND not in line:
                continue
            entry = orjson.loads(line)
            event_id = entry.get("event", {}).get("event_id")
            if isinstance(event_id, str) and event_id.startswith(tag):
                arrivals[event_id] = float(entry["monotonic"])
    return arrivals


def trigger_seq(audio_end_ms: int) -> int:
    """Sequence number of the append whose last sample is at `audio_end_ms` (appends are FRAME_MS long)."""
    return max(0, math.ceil(audio_end_ms / FRAME_MS) - 1)


def calibrate_offset(records: Sequence[SessionRecord], arrivals: dict[str, float], tag: str) -> int:
    """How many appends after `audio_end_ms` the simulator's VAD decides (its resampler holds a little audio).

    The delay is a property of the detector, constant for every turn, so it is the most common value of "the
    last append that had arrived before speech_stopped reached the client", measured at light load.
    """
    seen: list[int] = []
    for record in records:
        prefix = f"{tag}{record.index}-"
        for turn in record.turns:
            base = trigger_seq(turn.audio_end_ms)
            offset = -1
            for extra in range(_MAX_OFFSET + 1):
                arrived = arrivals.get(f"{prefix}{base + extra}")
                if arrived is None or arrived > turn.stopped_at:
                    break
                offset = extra
            if offset >= 0:
                seen.append(offset)
    return statistics.mode(seen) if seen else 0


def one_way(
    records: Sequence[SessionRecord],
    arrivals: dict[str, float],
    tag: str,
    *,
    offset: int = 0,
    window: tuple[float, float] = (-math.inf, math.inf),
) -> OneWay:
    """Samples in seconds; client->upstream only for appends sent within `window` (steady state)."""
    start, end = window
    upward: list[float] = []
    downward: list[float] = []
    for record in records:
        prefix = f"{tag}{record.index}-"
        for seq, sent in enumerate(record.sent_at):
            if start <= sent <= end:
                arrived = arrivals.get(f"{prefix}{seq}")
                if arrived is not None:
                    upward.append(arrived - sent)
        for turn in record.turns:
            arrived = arrivals.get(f"{prefix}{trigger_seq(turn.audio_end_ms) + offset}")
            if arrived is not None:
                downward.append(turn.stopped_at - arrived)
    return OneWay(upward, downward)


def turn_latencies(records: Iterable[SessionRecord]) -> list[float]:
    """speech_stopped received -> first output audio delta received, per completed turn (seconds)."""
    return [
        turn.first_delta_at - turn.stopped_at
        for record in records
        for turn in record.turns
        if turn.first_delta_at is not None
    ]
