"""What the session core asks its runner to do. The core returns these; the runner performs the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Close codes (named, as starlette does). 3000/4000 mirror OpenAI's fatal closes (REALTIME_PROTOCOL.md §6.3).
WS_1000_NORMAL = 1000
WS_1001_GOING_AWAY = 1001
WS_1008_POLICY_VIOLATION = 1008
WS_1009_MESSAGE_TOO_BIG = 1009
WS_1011_INTERNAL_ERROR = 1011
WS_1012_SERVICE_RESTART = 1012
WS_1013_TRY_AGAIN_LATER = 1013
WS_3000_UNAUTHORIZED = 3000
WS_4000_INVALID_REQUEST = 4000


@dataclass(slots=True)
class SendClient:
    """A text frame for the client. `seq` is its position in the server-event sequence (for resume)."""

    frame: str
    seq: int


@dataclass(slots=True)
class SendUpstream:
    frame: str


@dataclass(slots=True)
class CloseClient:
    code: int
    reason: str


@dataclass(slots=True)
class CloseUpstream:
    code: int
    reason: str


@dataclass(slots=True)
class RunTool:
    """Run a server-side tool; the runner feeds the result back with `tool_finished`."""

    call_id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Checkpoint:
    """A turn boundary or lifecycle change: persist the session's state now (batched, never per audio frame).

    With `barrier`, client events that follow wait (bounded) until the write is done: a client that has seen a
    turn end can rely on the turn being saved."""

    reason: str
    barrier: bool = False


@dataclass(slots=True)
class ReplaceUpstream:
    """Close the current upstream socket (if any), wait `delay_s`, open a new one, then call `upstream_opened`."""

    reason: str
    delay_s: float = 0.0


@dataclass(slots=True)
class Measure:
    """An observation for the runner's metrics. The core never touches metrics itself."""

    name: str
    value: float = 1.0
    labels: dict[str, str] = field(default_factory=dict)
    payload: Any = None


@dataclass(slots=True)
class Log:
    """A structured log line the runner writes, bound to the session."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)


Action = (
    SendClient
    | SendUpstream
    | CloseClient
    | CloseUpstream
    | RunTool
    | Checkpoint
    | ReplaceUpstream
    | Measure
    | Log
)
