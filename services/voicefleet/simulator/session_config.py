"""The GA session object: defaults as OpenAI sends them in `session.created`, and `session.update` semantics.

Updates are partial (only present fields change, nested objects merge), validated before anything is applied,
and a rejected update is discarded whole (REALTIME_PROTOCOL.md §5.1).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from voicefleet.audio.formats import FORMAT_TYPES, PCM
from voicefleet.simulator.protocol import (
    ProtocolError,
    invalid_type,
    invalid_value,
    missing_parameter,
    unknown_parameter,
)

DEFAULT_INSTRUCTIONS: Final = (
    "Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI. Act like a human, but "
    "remember that you aren't a human and that you can't do human things in the real world. Your voice and "
    "personality should be warm and engaging, with a lively and playful tone."
)
VOICES: Final = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")

_SESSION_KEYS: Final = frozenset(
    {
        "type", "model", "output_modalities", "instructions", "audio", "tools", "tool_choice",
        "parallel_tool_calls", "reasoning", "max_output_tokens", "truncation", "tracing", "prompt", "include",
        "id", "object", "expires_at",
    }
)  # fmt: skip
_READ_ONLY_KEYS: Final = frozenset({"id", "object", "expires_at", "model"})
_AUDIO_KEYS: Final = frozenset({"input", "output"})
_INPUT_KEYS: Final = frozenset({"format", "transcription", "noise_reduction", "turn_detection"})
_OUTPUT_KEYS: Final = frozenset({"format", "voice", "speed"})
_SERVER_VAD_KEYS: Final = frozenset(
    {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response",
     "idle_timeout_ms"}
)  # fmt: skip
_SEMANTIC_VAD_KEYS: Final = frozenset({"type", "eagerness", "create_response", "interrupt_response"})
IDLE_TIMEOUT_RANGE_MS: Final = (5000, 30000)
TRANSCRIPTION_MODELS: Final = (
    "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize", "gpt-transcribe", "gpt-live-transcribe", "gpt-realtime-whisper",
)  # fmt: skip
_TRANSCRIPTION_KEYS: Final = frozenset({"model", "language", "prompt", "languages", "keywords", "delay"})


def default_turn_detection(kind: str = "server_vad") -> dict[str, Any]:
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def default_session(session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The `session` of `session.created` (§4.1)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": PCM, "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection(),
            },
            "output": {"format": {"type": PCM, "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


def _require_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object")
    return value


def _check_keys(value: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            raise unknown_parameter(f"{path}.{key}")


def _integer_in_range(value: Any, path: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_type(path, "an integer")
    if value < low:
        raise ProtocolError(
            "integer_below_min_value",
            f"Invalid '{path}': integer below minimum value. Expected a value >= {low}, but got {value}.",
            path,
        )
    if value > high:
        raise ProtocolError(
            "integer_above_max_value",
            f"Invalid '{path}': integer above maximum value. Expected a value <= {high}, but got {value}.",
            path,
        )
    return value


def validate_transcription(value: Any, path: str) -> dict[str, Any] | None:
    """`audio.input.transcription`: null (off) or a model and its options (the SDK types `model` as optional)."""
    if value is None:
        return None
    config = _require_object(value, path)
    _check_keys(config, _TRANSCRIPTION_KEYS, path)
    if "model" in config and config["model"] not in TRANSCRIPTION_MODELS:
        raise invalid_value(f"{path}.model", config["model"], TRANSCRIPTION_MODELS)
    for key in ("language", "prompt"):
        if key in config and not isinstance(config[key], str):
            raise invalid_type(f"{path}.{key}", "a string")
    return copy.deepcopy(config)


def validate_format(value: Any, path: str) -> dict[str, Any]:
    """An audio format object; PCM is 24 kHz only (GA), G.711 has no rate."""
    fmt = _require_object(value, path)
    _check_keys(fmt, frozenset({"type", "rate"}), path)
    kind = fmt.get("type")
    if kind is None:
        raise missing_parameter(f"{path}.type")
    if kind not in FORMAT_TYPES:
        raise invalid_value(f"{path}.type", kind, FORMAT_TYPES)
    if kind == PCM:
        _integer_in_range(fmt.get("rate", 24000), f"{path}.rate", 24000, 24000)
        return {"type": PCM, "rate": 24000}
    return {"type": kind}


def merge_turn_detection(current: dict[str, Any] | None, update: Any, path: str) -> dict[str, Any] | None:
    if update is None:
        return None
    update = _require_object(update, path)
    kind = update.get("type", current["type"] if current else "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise invalid_value(f"{path}.type", kind, ("server_vad", "semantic_vad"))
    _check_keys(update, _SERVER_VAD_KEYS if kind == "server_vad" else _SEMANTIC_VAD_KEYS, path)
    merged = dict(current) if current and current.get("type") == kind else default_turn_detection(kind)
    merged.update(update)
    threshold = merged.get("threshold", 0.5)
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise invalid_value(f"{path}.threshold", threshold)
    for name in ("prefix_padding_ms", "silence_duration_ms"):
        if name in merged and (not isinstance(merged[name], int) or merged[name] < 0):
            raise invalid_type(f"{path}.{name}", "a non-negative integer")
    if merged.get("idle_timeout_ms") is not None:
        _integer_in_range(merged["idle_timeout_ms"], f"{path}.idle_timeout_ms", *IDLE_TIMEOUT_RANGE_MS)
    return merged


def _merge_audio(current: dict[str, Any], update: Any) -> dict[str, Any]:
    update = _require_object(update, "session.audio")
    _check_keys(update, _AUDIO_KEYS, "session.audio")
    merged = copy.deepcopy(current)
    if "input" in update:
        given = _require_object(update["input"], "session.audio.input")
        _check_keys(given, _INPUT_KEYS, "session.audio.input")
        target = merged["input"]
        if "format" in given:
            target["format"] = validate_format(given["format"], "session.audio.input.format")
        if "turn_detection" in given:
            target["turn_detection"] = merge_turn_detection(
                target["turn_detection"], given["turn_detection"], "session.audio.input.turn_detection"
            )
        if "transcription" in given:
            target["transcription"] = validate_transcription(
                given["transcription"], "session.audio.input.transcription"
            )
        if "noise_reduction" in given:
            target["noise_reduction"] = given["noise_reduction"]
    if "output" in update:
        given = _require_object(update["output"], "session.audio.output")
        _check_keys(given, _OUTPUT_KEYS, "session.audio.output")
        target = merged["output"]
        if "format" in given:
            target["format"] = validate_format(given["format"], "session.audio.output.format")
        if "voice" in given:
            voice = given["voice"]
            if not (voice in VOICES or isinstance(voice, dict)):
                raise invalid_value("session.audio.output.voice", voice, VOICES)
            target["voice"] = voice
        if "speed" in given:
            speed = given["speed"]
            if not isinstance(speed, int | float) or not 0.25 <= speed <= 1.5:
                raise invalid_value("session.audio.output.speed", speed)
            target["speed"] = speed
    return merged


def validate_modalities(value: Any, path: str) -> list[str]:
    if value not in (["audio"], ["text"]):
        raise invalid_value(path, value, ("audio", "text"))
    return list(value)


def apply_session_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """The effective session after `update`, or ProtocolError (then `current` stays as it was)."""
    update = _require_object(update, "session")
    _check_keys(update, _SESSION_KEYS, "session")
    if "type" not in update:
        raise missing_parameter("session.type")
    if update["type"] != "realtime":
        # Transcription sessions are out of scope for the simulator; OpenAI refuses a switch of type too.
        raise invalid_value("session.type", update["type"], ("realtime",))
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key in _READ_ONLY_KEYS or key == "type":
            continue
        if key == "audio":
            merged["audio"] = _merge_audio(merged["audio"], value)
        elif key == "output_modalities":
            merged[key] = validate_modalities(value, "session.output_modalities")
        elif key == "tools":
            if not isinstance(value, list):
                raise invalid_type("session.tools", "an array")
            merged[key] = copy.deepcopy(value)
        elif key == "instructions":
            if not isinstance(value, str):
                raise invalid_type("session.instructions", "a string")
            merged[key] = value
        else:
            merged[key] = copy.deepcopy(value)
    return merged
