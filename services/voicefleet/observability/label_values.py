"""The fixed sets of values a metric label may take.

Every label on a voicefleet metric draws from one of these sets, and anything outside a set is counted as
``other``. That keeps the number of series per worker fixed no matter what clients or the upstream send:
a client can put any string in an event's ``type``, and an error ``code`` is free text on the wire.
"""

from __future__ import annotations

OTHER = "other"

# Client -> server events of the GA Realtime protocol, plus the fleet's own extension.
CLIENT_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
        "fleet.playback",
    }
)

# Server -> client events of the GA Realtime protocol, plus the fleet's own extensions.
UPSTREAM_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "error",
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.segment",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.timeout_triggered",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "rate_limits.updated",
        "fleet.session",
        "fleet.upstream",
        "fleet.migrate",
    }
)

EVENT_TYPES_BY_DIRECTION: dict[str, frozenset[str]] = {
    "client": CLIENT_EVENT_TYPES,
    "upstream": UPSTREAM_EVENT_TYPES,
}

# Error codes seen in GA ``error`` events, and the ones the fleet itself sends to clients.
ERROR_CODES: frozenset[str] = frozenset(
    {
        # upstream (OpenAI GA)
        "invalid_request_error",
        "invalid_value",
        "invalid_type",
        "unknown_parameter",
        "missing_required_parameter",
        "decimal_above_max_value",
        "decimal_below_min_value",
        "integer_above_max_value",
        "integer_below_min_value",
        "string_above_max_length",
        "conversation_already_has_active_response",
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
        "item_truncate_invalid_item_id",
        "item_truncate_invalid_content_index",
        "item_truncate_invalid_audio_end_ms",
        "invalid_api_key",
        "insufficient_quota",
        "rate_limit_exceeded",
        "session_expired",
        "server_error",
        # fleet
        "unauthorized",
        "frame_too_large",
        "message_rate_exceeded",
        "session_limit_reached",
        "session_update_locked_field",
        "audio_buffer_full",
        "invalid_json",
        "invalid_event",
        "input_audio_buffer_too_large",
        "upstream_unavailable",
        "resume_failed",
        "tool_error",
        "tool_timeout",
        "draining",
        "locked_parameter",
        "idle_timeout",
        "upstream_closed",
        "upstream_reconnecting",
        "resume_gap",
        "invalid_resume_token",
        "resume_token_expired",
        "session_not_found",
        "store_unavailable",
        "server_busy",
        "server_draining",
        "invalid_intent",
        "beta_api_shape_disabled",
    }
)

SESSION_END_REASONS: frozenset[str] = frozenset(
    {
        "client_closed",
        "idle_timeout",
        "max_duration",
        "upstream_failed",
        "upstream_closed",
        "migrated",
        "drained",
        "slow_client",
        "client_too_slow",
        "upstream_too_slow",
        "upstream_unavailable",
        "policy_violation",
        "error",
        "client_gone",
        "handed_over",
        "stale_owner",
        "max_session_duration",
    }
)

UPSTREAM_RECONNECT_REASONS: frozenset[str] = frozenset(
    {"connection_lost", "server_error", "session_expired", "rotation", "resume", "lost", "expired"}
)

AUTH_FAILURE_REASONS: frozenset[str] = frozenset(
    {
        "missing_credentials",
        "missing_key",
        "invalid_key",
        "unknown_key",
        "beta_shape",
        "bad_token",
        "expired_token",
        "wrong_session",
    }
)

REDIS_OPERATIONS: frozenset[str] = frozenset(
    {
        "ping",
        "load",
        "save",
        "checkpoint",
        "append_item",
        "claim",
        "renew",
        "release",
        "delete",
        "heartbeat",
        "lease",
    }
)

RESUME_KINDS: frozenset[str] = frozenset({"same_worker", "other_worker", "upstream"})
RESUME_OUTCOMES: frozenset[str] = frozenset({"ok", "failed", "expired", "rejected", "refused"})
TOOL_OUTCOMES: frozenset[str] = frozenset({"ok", "error", "timeout"})
RELAY_DIRECTIONS: frozenset[str] = frozenset({"client_to_upstream", "upstream_to_client"})
TOKEN_KINDS: frozenset[str] = frozenset(
    {"input_text", "input_audio", "cached", "output_text", "output_audio"}
)
AUDIO_DIRECTIONS: frozenset[str] = frozenset({"input", "output"})

# Server-side tools come from the operator's tools module, so their names are already bounded; this cap is
# a second fence in case a tools module registers names dynamically.
MAX_TOOL_NAMES = 64
