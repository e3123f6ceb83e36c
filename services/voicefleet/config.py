"""One frozen settings object, built once from the environment and passed down.

Every field is documented here because operators read this file to learn what they can set. Names are
``VOICEFLEET_<FIELD>`` in upper case, except ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_UPSTREAM_URL = "wss://api.openai.com/v1/realtime"
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant. Speak naturally and keep answers short unless asked for detail."


class ConfigError(ValueError):
    """A setting in the environment cannot be used; the message names it."""


def hash_client_key(key: str) -> str:
    """Client keys are kept only as SHA-256 hex digests, so a memory dump does not reveal them."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Settings:
    # --- listening -----------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Address the worker binds."""
    port: int = 8000
    """Port the worker binds."""
    worker_id: str = ""
    """Name of this worker in logs and Redis ownership records (default: host name + port)."""

    # --- upstream ------------------------------------------------------------------------------------------
    upstream_url: str = DEFAULT_UPSTREAM_URL
    """GA Realtime endpoint the worker relays to (OpenAI, Azure GA, or the simulator)."""
    openai_api_key: str = field(default="", repr=False)
    """Upstream key. Never sent to clients, never logged (repr hides it)."""
    upstream_auth: str = "bearer"
    """``bearer`` (OpenAI: ``Authorization: Bearer``) or ``azure`` (``api-key`` header)."""
    model: str = "gpt-realtime"
    """Model used when the client's URL names none."""
    upstream_connect_timeout_s: float = 10.0
    upstream_connect_attempts: int = 4
    """Bounded retries (exponential backoff with jitter) when opening the upstream socket."""
    upstream_max_session_s: float = 3600.0
    """The upstream's own session cap; the worker rotates to a fresh upstream session before it."""

    # --- clients -------------------------------------------------------------------------------------------
    api_key_hashes: tuple[str, ...] = field(default=(), repr=False)
    """SHA-256 digests of accepted client keys (from ``VOICEFLEET_API_KEYS``, comma separated)."""
    token_secret: bytes = field(default=b"", repr=False)
    """HMAC secret for resume tokens; the same on every worker of a fleet."""
    expose_server_policy: bool = False
    """Show server-side instructions and tools to clients in session.created/updated."""
    locked_fields: tuple[str, ...] = ("model", "instructions", "tools")
    """Session fields a client ``session.update`` may not replace (dotted paths, e.g. audio.output.voice)."""

    # --- default session policy (the seed's) ---------------------------------------------------------------
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "marin"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    input_transcription_model: str = "gpt-4o-mini-transcribe"
    """Transcribe what users say (billed separately by OpenAI). The text is what a session is rebuilt from on a
    fresh upstream, since audio cannot be replayed; empty turns it off (a rebuilt session then lacks user turns)."""
    tools: str = ""
    """Python module whose ``@tool`` functions run server-side (``package.module``)."""
    tool_timeout_s: float = 10.0
    """Global bound on any one tool call; a tool may set a shorter one."""

    # --- limits --------------------------------------------------------------------------------------------
    max_sessions: int = 1000
    max_frame_bytes: int = 2 * 1024 * 1024
    """Larger client frames close the socket with 1009."""
    max_messages_per_s: float = 200.0
    """Per-session client message rate (token bucket, burst = 2 s worth)."""
    max_session_s: float = 4 * 3600.0
    max_idle_s: float = 600.0
    max_audio_buffer_bytes: int = 15 * 1024 * 1024
    """Uncommitted input audio the worker will hold for one session (OpenAI's per-append limit is 15 MiB)."""
    client_queue_frames: int = 512
    """Outbound frames queued to a slow client before it is closed with 1013."""
    upstream_queue_frames: int = 512

    # --- state and lifecycle -------------------------------------------------------------------------------
    redis_url: str = ""
    """Unset: in-memory store (single worker). Set: Redis checkpoints and cross-worker resume."""
    resume_grace_s: float = 30.0
    """How long a worker keeps a disconnected client's upstream open for a same-worker resume."""
    resume_ring_events: int = 4096
    """Server events kept per session for replay to a reconnecting client."""
    resume_ring_bytes: int = 4 * 1024 * 1024
    """...and at most this many bytes of them (reply audio dominates: 64 KB per second of speech)."""
    session_ttl_s: float = 3600.0
    """How long session state stays in the store after the session ends."""
    drain_timeout_s: float = 60.0
    """SIGTERM: how long the worker waits for sessions to migrate before exiting."""

    # --- logs ----------------------------------------------------------------------------------------------
    log_level: str = "info"
    log_format: str = "auto"
    """``json``, ``console``, or ``auto`` (console on a terminal, JSON otherwise)."""

    @property
    def uses_simulator(self) -> bool:
        return not self.openai_api_key

    def check_client_key(self, presented: str) -> bool:
        """Constant-time comparison against every configured digest."""
        digest = hash_client_key(presented)
        matched = False
        for known in self.api_key_hashes:
            matched |= secrets.compare_digest(digest, known)
        return matched

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``VOICEFLEET_*`` variables; unknown values raise ConfigError naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in {"api_key_hashes", "token_secret", "openai_api_key"}:
                continue
            name = "VOICEFLEET_" + f.name.upper()
            if name not in env:
                continue
            values[f.name] = _parse(name, env[name], f.default)
        values["openai_api_key"] = env.get("OPENAI_API_KEY", "")
        keys = [k.strip() for k in env.get("VOICEFLEET_API_KEYS", "").split(",") if k.strip()]
        values["api_key_hashes"] = tuple(hash_client_key(k) for k in keys)
        values["token_secret"] = env.get("VOICEFLEET_TOKEN_SECRET", "").encode()
        values.update(overrides)  # command-line flags win, and count for the default worker id below
        settings = cls(**values)
        if settings.upstream_auth not in {"bearer", "azure"}:
            raise ConfigError("VOICEFLEET_UPSTREAM_AUTH must be 'bearer' or 'azure'")
        if settings.log_format not in {"json", "console", "auto"}:
            raise ConfigError("VOICEFLEET_LOG_FORMAT must be 'json', 'console' or 'auto'")
        if not settings.worker_id:
            settings = replace(settings, worker_id=f"{os.uname().nodename}:{settings.port}")
        return settings


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid {type(default).__name__}") from exc
    return raw
