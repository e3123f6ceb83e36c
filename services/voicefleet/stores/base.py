"""Where session state lives between turns: the SessionStore protocol and the snapshot it stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class SessionSnapshot:
    """Everything needed to rebuild a session on any worker. Written per turn, never per audio frame."""

    session_id: str
    tenant: str
    model: str
    config: dict[str, Any]
    """The merged session policy: the session as last confirmed by the upstream (`session.updated`)."""
    items: list[dict[str, Any]] = field(default_factory=list)
    token_version: int = 1
    owner: str = ""
    created_at: float = 0.0
    last_active_at: float = 0.0
    ended: bool = False


class StoreUnavailable(RuntimeError):
    """The store could not be reached; the caller keeps the session running without checkpoints."""


class StaleOwner(StoreUnavailable):
    """Another worker owns this session now; the writer must stop serving it."""


class SessionStore(Protocol):
    async def save(self, snapshot: SessionSnapshot, *, fence: int | None = None) -> None: ...

    async def load(self, session_id: str) -> SessionSnapshot | None: ...

    async def acquire_lease(self, session_id: str, owner: str, ttl_s: float) -> int:
        """Take ownership; returns the fencing token that every later write must carry."""
        ...

    async def release(self, session_id: str, owner: str) -> None: ...

    async def lease_holder(self, session_id: str) -> tuple[str, int] | None:
        """(owner, fence) of the current lease, if any."""
        ...

    async def heartbeat(self, worker_id: str, ttl_s: float) -> None: ...

    async def worker_alive(self, worker_id: str) -> bool: ...

    async def request_handover(self, owner: str, session_id: str, new_owner: str) -> int: ...

    def handover_requests(
        self, worker_id: str, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Requests from other workers to let go of one of this worker's sessions, until cancelled."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
