"""Token accounting that looks like OpenAI's: `usage` in `response.done` and the `rate_limits.updated` event.

Rates: input audio is about 10 tokens per second, output audio about 20, text about 4 characters per token.
Cached input is the prefix shared with the previous response, in 64-token blocks, as prompt caching works.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

INPUT_AUDIO_TOKENS_PER_S = 10.0
OUTPUT_AUDIO_TOKENS_PER_S = 20.0
CACHE_BLOCK = 64
TOKENS_PER_MINUTE = 40_000


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4 if text else 0


@dataclass(frozen=True, slots=True)
class InputTokens:
    text: int
    audio: int

    @property
    def total(self) -> int:
        return self.text + self.audio


def count_input(
    instructions: str, tools: list[Any], items: list[tuple[dict[str, Any], float]]
) -> InputTokens:
    """Tokens the model reads for a response: instructions, tools and every conversation item."""
    text = text_tokens(instructions) + (text_tokens(json.dumps(tools)) if tools else 0)
    audio = 0
    for item, audio_ms in items:
        text += 4  # per-item framing
        for part in item.get("content") or []:
            text += text_tokens(str(part.get("text") or part.get("transcript") or ""))
        text += text_tokens(str(item.get("arguments", ""))) + text_tokens(str(item.get("output", "")))
        rate = OUTPUT_AUDIO_TOKENS_PER_S if item.get("role") == "assistant" else INPUT_AUDIO_TOKENS_PER_S
        audio += round(audio_ms / 1000 * rate)
    return InputTokens(text=text, audio=audio)


def usage(inputs: InputTokens, cached: int, output_text: int, output_audio_ms: float) -> dict[str, Any]:
    output_audio = round(output_audio_ms / 1000 * OUTPUT_AUDIO_TOKENS_PER_S)
    cached = min(cached, inputs.total) // CACHE_BLOCK * CACHE_BLOCK
    cached_audio = min(cached, inputs.audio)
    return {
        "total_tokens": inputs.total + output_text + output_audio,
        "input_tokens": inputs.total,
        "output_tokens": output_text + output_audio,
        "input_token_details": {
            "text_tokens": inputs.text,
            "audio_tokens": inputs.audio,
            "image_tokens": 0,
            "cached_tokens": cached,
            "cached_tokens_details": {
                "text_tokens": cached - cached_audio,
                "audio_tokens": cached_audio,
                "image_tokens": 0,
            },
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }


class TokenRateWindow:
    """Tokens used in the last minute, for `rate_limits.updated` (a sliding window, like the real limiter)."""

    def __init__(self, limit: int = TOKENS_PER_MINUTE) -> None:
        self.limit = limit
        self._spent: deque[tuple[float, int]] = deque()

    def spend(self, now: float, tokens: int) -> dict[str, Any]:
        self._spent.append((now, tokens))
        while self._spent and self._spent[0][0] < now - 60.0:
            self._spent.popleft()
        used = sum(tokens for _, tokens in self._spent)
        return {
            "name": "tokens",
            "limit": self.limit,
            "remaining": max(0, self.limit - used),
            "reset_seconds": round(used / (self.limit / 60.0), 3),
        }


def transcription_usage(audio_ms: float, prompt: str, transcript: str) -> dict[str, Any]:
    """`usage` of `input_audio_transcription.completed`: billed by the transcription model, not the realtime one."""
    audio = round(audio_ms / 1000 * INPUT_AUDIO_TOKENS_PER_S)
    text = text_tokens(prompt)
    output = text_tokens(transcript)
    return {
        "type": "tokens",
        "input_tokens": text + audio,
        "output_tokens": output,
        "total_tokens": text + audio + output,
        "input_token_details": {"text_tokens": text, "audio_tokens": audio},
    }
