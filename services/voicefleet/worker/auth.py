"""Client credentials: a bearer header for servers and SDKs, subprotocols for browsers (which cannot set headers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INSECURE_KEY_PREFIX = "openai-insecure-api-key."
REALTIME_SUBPROTOCOL = "realtime"
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    key: str | None
    """The presented client key, if any."""
    subprotocol: str | None
    """The subprotocol to echo in the 101 (never the one carrying the key)."""
    beta: bool
    """The client asked for the retired beta shape (header or subprotocol)."""


def extract_credentials(headers: Mapping[str, str], subprotocols: Sequence[str]) -> ClientCredentials:
    key: str | None = None
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        key = value.strip()
    for offered in subprotocols:
        if offered.startswith(INSECURE_KEY_PREFIX) and key is None:
            key = offered[len(INSECURE_KEY_PREFIX) :] or None
    echo = REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in subprotocols else None
    beta = headers.get("openai-beta", "").lower().startswith("realtime") or BETA_SUBPROTOCOL in subprotocols
    return ClientCredentials(key=key, subprotocol=echo, beta=beta)
