"""structlog set-up: JSON lines for machines, a console format on a terminal, and no secrets in either.

Keys and audio must never reach a log line. Every line passes a redaction step that drops audio payload fields
and masks anything that looks like a credential, so a careless `log.info(..., event=raw_event)` stays safe.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Fields whose values are audio or credentials, at any depth.
_DROP_KEYS = frozenset(
    {"audio", "delta", "authorization", "api_key", "api-key", "openai_api_key", "token_secret"}
)
_MASK_KEYS = frozenset({"resume_token", "client_secret", "key", "secret"})
_CREDENTIAL = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|ek_[A-Za-z0-9_\-]{6,}|openai-insecure-api-key\.[^\s,\"']+)")


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return "…"
    if isinstance(value, dict):
        clean: dict[str, Any] = {}
        for key, inner in value.items():
            lowered = str(key).lower()
            if lowered in _DROP_KEYS:
                clean[key] = f"<{len(inner) if isinstance(inner, str | bytes) else '?'} chars omitted>"
            elif lowered in _MASK_KEYS:
                clean[key] = "<redacted>"
            else:
                clean[key] = _scrub(inner, depth + 1)
        return clean
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _CREDENTIAL.sub("<redacted>", value) if len(value) < 4096 else f"<{len(value)} chars omitted>"
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: applied to every log line, last before rendering."""
    scrubbed = _scrub(dict(event_dict))
    assert isinstance(scrubbed, dict)
    return scrubbed


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # uvicorn and websockets log through the standard library; keep them quiet and on the same stream.
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(levelname)s %(name)s: %(message)s")


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("voicefleet").bind(**bound)
