"""Per-session limits and the message-rate token bucket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_messages_per_s: float = 200.0
    max_session_s: float = 4 * 3600.0
    max_idle_s: float = 600.0
    max_audio_buffer_bytes: int = 15 * 1024 * 1024
    ring_events: int = 4096
    ring_bytes: int = 4 * 1024 * 1024
    """Replay buffer bound in bytes: about a minute of reply audio."""
    max_queued_before_ready: int = 2048
    """Client events held while the upstream session is being set up."""
    client_truncate_grace_s: float = 0.25
    """How long to wait for a client's own truncate before sending the worker's estimate."""
    resume_grace_s: float = 30.0
    """How long a dropped client's session is kept (upstream open, events buffered) for it to come back."""
    upstream_max_session_s: float = 3600.0
    """The upstream's session cap; the session moves to a fresh upstream at a turn boundary before it."""
    max_upstream_reconnects: int = 5
    """Consecutive failed attempts to replace a lost upstream before the session ends."""
    extra_client_event_types: frozenset[str] = frozenset()
    """Client event types to pass through although this worker does not know them (new OpenAI events)."""


class RateLimiter:
    """Token bucket: `rate` events per second on average, bursts of up to two seconds' worth."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 2.0)
        self.tokens = self.capacity
        self.updated = now

    def allow(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
