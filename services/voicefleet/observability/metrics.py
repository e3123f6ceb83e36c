"""Every metric a worker exports, defined once, on a registry the caller owns.

The session runner increments these; the sans-I/O core never sees them. Labels only ever take values from
the fixed sets in :mod:`voicefleet.observability.label_values` (anything else is counted as ``other``), so a
worker's series count is bounded whatever clients send. Label children are created up front where the set
is small: a rate over a counter that exists at 0 reads as 0 in Grafana and alerts, not as "no data".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from voicefleet.observability import label_values as lv

# Spoken turns live between a few milliseconds (relay hops, cached replies) and a few seconds (slow tools,
# cold upstreams); the buckets are densest around the 150-800 ms band where users notice a voice agent lag.
VOICE_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3,
    0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
# The worker's own hop should cost microseconds to a millisecond; anything in the tens of ms is a stall.
RELAY_BUCKETS: Final[tuple[float, ...]] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
)  # fmt: skip
# Draining waits for sessions to migrate, bounded by the drain timeout (60 s by default).
DRAIN_BUCKETS: Final[tuple[float, ...]] = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)


class _FoldedLabel:
    """Children of a one-label metric by raw value; values outside ``allowed`` share the ``other`` child.

    Only allowed values are remembered, so the cache cannot grow with hostile input either.
    """

    def __init__(self, metric: Counter, allowed: Iterable[str]) -> None:
        self._metric = metric
        self._children: dict[str, Any] = {value: metric.labels(value) for value in allowed}
        self._other = metric.labels(lv.OTHER)

    def child(self, value: str) -> Any:
        return self._children.get(value, self._other)


class FleetMetrics:
    """The worker's metrics. Attributes are plain prometheus-client metrics; methods fold unbounded input."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        # --- latency histograms ---------------------------------------------------------------------------
        self.turn_latency = Histogram(
            "voicefleet_turn_latency_seconds",
            "User speech stopped to the first audio delta sent to the client.",
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.upstream_first_audio = Histogram(
            "voicefleet_upstream_first_audio_seconds",
            "Response requested upstream to the first audio delta received from upstream.",
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.upstream_connect = Histogram(
            "voicefleet_upstream_connect_seconds",
            "Time to open the upstream Realtime socket (TCP, TLS and WebSocket handshake).",
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.relay_latency = Histogram(
            "voicefleet_relay_added_latency_seconds",
            "Time an event spends inside the worker between being received and being sent on.",
            ["direction"],
            buckets=RELAY_BUCKETS,
            registry=r,
        )
        self.tool_duration = Histogram(
            "voicefleet_tool_duration_seconds",
            "Server-side tool call duration by tool and outcome.",
            ["tool", "outcome"],
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.resume_duration = Histogram(
            "voicefleet_resume_duration_seconds",
            "Reconnect request to resumed session, by kind of resume.",
            ["kind"],
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.drain_duration = Histogram(
            "voicefleet_drain_duration_seconds",
            "SIGTERM to the last session gone from this worker.",
            buckets=DRAIN_BUCKETS,
            registry=r,
        )

        # --- counters (exposed with a ``_total`` suffix) --------------------------------------------------
        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(f"voicefleet_{name}", documentation, labels, registry=r)

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(f"voicefleet_{name}", documentation, registry=r)

        self.sessions_started = counter("sessions_started", "Client sessions accepted.")
        self.sessions_ended = counter("sessions_ended", "Client sessions ended, by reason.", "reason")
        self.events = counter("events", "Realtime events received, by side and type.", "direction", "type")
        self.errors = counter("errors", "Error events sent to clients, by code.", "code")
        self.interruptions = counter(
            "interruptions", "Barge-ins: user speech started while the agent was speaking."
        )
        self.truncations = counter(
            "truncations", "Assistant audio items truncated to what the client had played."
        )
        self.upstream_reconnects = counter(
            "upstream_reconnects", "Upstream sockets reopened mid-session, by reason.", "reason"
        )
        self.resumes = counter("resumes", "Session resume attempts, by kind and outcome.", "kind", "outcome")
        self.auth_failures = counter("auth_failures", "Rejected client connections, by reason.", "reason")
        self.tokens = counter("tokens", "Upstream tokens from response.done usage, by kind.", "kind")
        self.audio_seconds = counter("audio_seconds", "Seconds of audio relayed, by direction.", "direction")
        self.redis_failures = counter("redis_failures", "Failed Redis operations, by operation.", "operation")

        # --- gauges ---------------------------------------------------------------------------------------
        self.live_sessions = gauge("live_sessions", "Client sessions open on this worker.")
        self.draining = gauge("draining", "1 while this worker drains and accepts no new sessions.")
        self.resume_buffered_sessions = gauge(
            "resume_buffered_sessions",
            "Sessions whose client is gone but whose upstream is held open for a same-worker resume.",
        )
        self.redis_up = gauge(
            "redis_up", "1 when the session store answered its last check (the in-memory store is always up)."
        )

        self._init_children()

    def _init_children(self) -> None:
        self._session_end = _FoldedLabel(self.sessions_ended, lv.SESSION_END_REASONS)
        self._error = _FoldedLabel(self.errors, lv.ERROR_CODES)
        self._reconnect = _FoldedLabel(self.upstream_reconnects, lv.UPSTREAM_RECONNECT_REASONS)
        self._auth_failure = _FoldedLabel(self.auth_failures, lv.AUTH_FAILURE_REASONS)
        self._redis_failure = _FoldedLabel(self.redis_failures, lv.REDIS_OPERATIONS)
        self._tokens = {kind: self.tokens.labels(kind) for kind in sorted(lv.TOKEN_KINDS)}
        self._audio = {d: self.audio_seconds.labels(d) for d in sorted(lv.AUDIO_DIRECTIONS)}
        self._relay = {d: self.relay_latency.labels(d) for d in sorted(lv.RELAY_DIRECTIONS)}
        self._resume_duration = {kind: self.resume_duration.labels(kind) for kind in sorted(lv.RESUME_KINDS)}
        self._resumes = {
            (kind, outcome): self.resumes.labels(kind, outcome)
            for kind in sorted(lv.RESUME_KINDS)
            for outcome in sorted(lv.RESUME_OUTCOMES)
        }
        # Event children are made on first use (most of the ~60 types never occur on a given fleet) and cached
        # under known (direction, type) keys only; every unknown type resolves to its direction's `other`.
        self._event_children: dict[tuple[str, str], Any] = {}
        self._event_other = {d: self.events.labels(d, lv.OTHER) for d in lv.EVENT_TYPES_BY_DIRECTION}
        self._tool_children: dict[tuple[str, str], Any] = {}
        self._tool_names: set[str] = set()

    # --- hot path -----------------------------------------------------------------------------------------
    def count_event(self, direction: str, event_type: str, count: int = 1) -> None:
        """Count events; ``direction`` is ``client`` or ``upstream``, unknown types count as ``other``."""
        key = (direction, event_type)
        child = self._event_children.get(key)
        if child is None:
            child = self._resolve_event_child(direction, event_type)
        child.inc(count)

    def _resolve_event_child(self, direction: str, event_type: str) -> Any:
        known = lv.EVENT_TYPES_BY_DIRECTION.get(direction)
        if known is None:
            raise ValueError(f"event direction must be 'client' or 'upstream', not {direction!r}")
        if event_type not in known:
            return self._event_other[direction]
        child = self.events.labels(direction, event_type)
        self._event_children[(direction, event_type)] = child
        return child

    def observe_relay(self, direction: str, seconds: float) -> None:
        """Record the worker's own hop; ``direction`` is client_to_upstream or upstream_to_client."""
        self._relay[direction].observe(seconds)

    def count_audio(self, direction: str, seconds: float) -> None:
        """Add relayed audio time; ``direction`` is ``input`` (from the user) or ``output`` (to the user)."""
        if seconds > 0:
            self._audio[direction].inc(seconds)

    # --- counters with free-text labels ------------------------------------------------------------------
    def count_error(self, code: str | None) -> None:
        self._error.child(code or lv.OTHER).inc()

    def count_session_end(self, reason: str) -> None:
        self._session_end.child(reason).inc()

    def count_upstream_reconnect(self, reason: str) -> None:
        self._reconnect.child(reason).inc()

    def count_auth_failure(self, reason: str) -> None:
        self._auth_failure.child(reason).inc()

    def count_redis_failure(self, operation: str) -> None:
        self._redis_failure.child(operation).inc()

    def count_resume(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        """Count a resume attempt; a successful one with a duration is also observed in resume_duration."""
        if kind not in lv.RESUME_KINDS:
            raise ValueError(f"resume kind must be one of {sorted(lv.RESUME_KINDS)}, not {kind!r}")
        folded_outcome = outcome if outcome in lv.RESUME_OUTCOMES else "failed"
        self._resumes[(kind, folded_outcome)].inc()
        if seconds is not None and folded_outcome == "ok":
            self._resume_duration[kind].observe(seconds)

    def observe_tool(self, tool: str, outcome: str, seconds: float) -> None:
        """Record one server-side tool call; outcomes other than ok/timeout count as ``error``."""
        folded_outcome = outcome if outcome in lv.TOOL_OUTCOMES else "error"
        if tool not in self._tool_names:
            if len(self._tool_names) >= lv.MAX_TOOL_NAMES:
                tool = lv.OTHER
            else:
                self._tool_names.add(tool)
        key = (tool, folded_outcome)
        child = self._tool_children.get(key)
        if child is None:
            child = self._tool_children[key] = self.tool_duration.labels(tool, folded_outcome)
        child.observe(seconds)

    def count_usage(self, usage: Mapping[str, Any] | None) -> None:
        """Add the token counts of a GA ``response.done`` ``response.usage`` object.

        ``cached`` is a subset of the input tokens (billed at a lower price), not an addition to them.
        Malformed or missing fields are skipped: usage is bookkeeping and must never break a session.
        """
        if not isinstance(usage, Mapping):
            return
        input_details = usage.get("input_token_details")
        output_details = usage.get("output_token_details")
        if isinstance(input_details, Mapping):
            self._add_tokens("input_text", input_details.get("text_tokens"))
            self._add_tokens("input_audio", input_details.get("audio_tokens"))
            self._add_tokens("cached", input_details.get("cached_tokens"))
        if isinstance(output_details, Mapping):
            self._add_tokens("output_text", output_details.get("text_tokens"))
            self._add_tokens("output_audio", output_details.get("audio_tokens"))

    def _add_tokens(self, kind: str, count: object) -> None:
        # bool is an int subclass; a True here is a malformed payload, not one token.
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            self._tokens[kind].inc(count)

    # --- gauges -------------------------------------------------------------------------------------------
    def set_draining(self, draining: bool) -> None:
        self.draining.set(1 if draining else 0)

    def set_redis_up(self, up: bool) -> None:
        self.redis_up.set(1 if up else 0)

    # --- exposition ---------------------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
