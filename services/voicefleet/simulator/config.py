"""The simulator's settings: one frozen object, built by the command line or by a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from voicefleet.simulator.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Faults:
    """Failures to inject, measured from the moment a session is created."""

    close_after_s: float | None = None
    """Close the socket this long after connect, as a lost upstream would look to the worker."""
    close_code: int = 1011
    """Close code used by `close_after_s` (1011 = server error; the SDK's auto-reconnect retries it)."""
    expire_after_s: float | None = None
    """Send the `session_expired` error and close, as OpenAI does at its maximum session duration."""


@dataclass(frozen=True, slots=True)
class AudioPacing:
    """How reply audio is streamed: OpenAI produces audio faster than real time and the client buffers it."""

    chunk_ms: int = 100
    """Audio per `response.output_audio.delta` event."""
    speed_factor: float = 4.0
    """Audio is generated this many times faster than real time (1.0 = real time)."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    profile: str = "none"
    """Latency profile for time to first audio: us-east, eu-west, ap-tokyo or none."""
    scenario: Scenario = field(default_factory=Scenario)
    """Scripted turns and the default reply."""
    seed: int | None = None
    """Seed of the latency sampler (None = a different sequence every run)."""
    api_key: str | None = None
    """When set, clients must present this key (Bearer header or browser subprotocol), else close 3000."""
    faults: Faults = field(default_factory=Faults)
    pacing: AudioPacing = field(default_factory=AudioPacing)
    event_log: Path | None = None
    """JSON-lines file of every client event received (audio replaced by its decoded length)."""
    max_session_s: float = 3600.0
    """Session lifetime announced in `expires_at` and enforced like OpenAI (60 minutes on GA)."""
    speech: bool = True
    """Synthesize replies with espeak-ng when installed; a tone otherwise (or when False)."""
    recorded_events_per_session: int = 20_000
    """In-memory record bound per session; older events drop off so long load tests do not grow memory."""
    recorded_sessions: int = 2_000
    """In-memory record bound on sessions; the oldest are forgotten first."""
