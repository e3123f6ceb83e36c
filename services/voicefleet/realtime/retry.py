"""Is an upstream failure worth retrying? One pure function, modelled on websockets' process_exception."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Close codes after which a new upstream session is worth opening (the SDK's own reconnect list, plus OpenAI's
# session cap, which arrives as an `error` with code session_expired before the close).
RETRYABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014, 1015})
# OpenAI's fatal closes carry 3000 (auth) or 4000 (invalid request); retrying them only repeats the failure.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010, 3000, 4000})
RETRYABLE_ERROR_CODES = frozenset({"session_expired", "server_error", "rate_limit_exceeded"})


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    close_code: int | None = None
    """None when the connection could not be opened at all."""
    error_code: str | None = None
    """`error.code` of the last error event before the close, if any."""
    http_status: int | None = None
    """Status of a refused upgrade."""


def is_retryable(failure: UpstreamFailure) -> bool:
    if failure.error_code in RETRYABLE_ERROR_CODES:
        return True
    if failure.http_status is not None:
        return failure.http_status in (408, 429) or failure.http_status >= 500
    if failure.close_code is None:
        return True  # refused or reset connection, DNS hiccup, timeout: transient until proven otherwise
    if failure.close_code in FATAL_CLOSE_CODES:
        return False
    return failure.close_code in RETRYABLE_CLOSE_CODES or (
        failure.close_code == 1000 and failure.error_code is None
    )


def backoff_delay(
    attempt: int, *, base: float = 0.25, cap: float = 8.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter: attempt 0 waits up to `base`, then doubling, never over `cap`."""
    ceiling = min(cap, base * (2**attempt))
    return (rng or random).uniform(0, ceiling)
