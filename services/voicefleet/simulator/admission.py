"""Who may open a session, decided as OpenAI does: after the upgrade, with an `error` event and a close code.

REALTIME_PROTOCOL.md §1.2 and §6.3: a bad or missing key closes 3000, the beta header and a missing model 4000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from voicefleet.simulator.protocol import ServerEvent, error_event

KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"


@dataclass(frozen=True, slots=True)
class Refusal:
    error: ServerEvent
    close_code: int
    reason: str


def presented_key(headers: Mapping[str, str], subprotocols: Sequence[str]) -> str | None:
    """The key from `Authorization: Bearer` or, for browsers, the `openai-insecure-api-key.` subprotocol."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    for protocol in subprotocols:
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return protocol[len(KEY_SUBPROTOCOL_PREFIX) :]
    return None


def masked(key: str) -> str:
    """How OpenAI quotes a wrong key: the ends only, so error messages never carry a secret."""
    return f"{key[:3]}***{key[-4:]}" if len(key) > 12 else "***"


def refusal(
    *, api_key: str | None, headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Sequence[str]
) -> Refusal | None:
    if api_key is not None:
        key = presented_key(headers, subprotocols)
        if key is None:
            message = "Missing bearer or basic authentication in header"
            return Refusal(error_event(None, message), 3000, "invalid_request_error")
        if key != api_key:
            message = (
                f"Incorrect API key provided: {masked(key)}. "
                "You can find your API key at https://platform.openai.com/account/api-keys."
            )
            return Refusal(
                error_event("invalid_api_key", message), 3000, "invalid_request_error.invalid_api_key"
            )
    if headers.get("openai-beta", "").strip().lower() == "realtime=v1" or BETA_SUBPROTOCOL in subprotocols:
        message = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
        return Refusal(
            error_event("beta_api_shape_disabled", message),
            4000,
            "invalid_request_error.beta_api_shape_disabled",
        )
    if not query.get("model"):
        message = "You must provide a model parameter, for example wss://api.openai.com/v1/realtime?model=gpt-realtime"
        return Refusal(error_event("missing_model", message), 4000, "invalid_request_error.missing_model")
    return None


def accepted_subprotocol(subprotocols: Sequence[str]) -> str | None:
    """Browsers offer `realtime` plus the key; the server must echo one it accepts."""
    return "realtime" if "realtime" in subprotocols else None
