"""In-memory store for the embedded single-worker default: no Redis, nothing survives the process."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from voicefleet.stores.base import SessionSnapshot, StaleOwner


@dataclass(slots=True)
class _Lease:
    owner: str
    fence: int


class InMemoryStore:
    def __init__(self) -> None:
        self._snapshots: dict[str, SessionSnapshot] = {}
        self._leases: dict[str, _Lease] = {}
        self._fence = 0

    async def save(self, snapshot: SessionSnapshot, *, fence: int | None = None) -> None:
        lease = self._leases.get(snapshot.session_id)
        if fence is not None and lease is not None and lease.fence != fence:
            raise StaleOwner(f"stale owner: fence {fence} superseded by {lease.fence}")
        self._snapshots[snapshot.session_id] = copy.deepcopy(snapshot)

    async def load(self, session_id: str) -> SessionSnapshot | None:
        snapshot = self._snapshots.get(session_id)
        return copy.deepcopy(snapshot) if snapshot is not None else None

    async def acquire_lease(self, session_id: str, owner: str, ttl_s: float) -> int:
        self._fence += 1
        self._leases[session_id] = _Lease(owner, self._fence)
        return self._fence

    async def release(self, session_id: str, owner: str) -> None:
        lease = self._leases.get(session_id)
        if lease is not None and lease.owner == owner:
            del self._leases[session_id]

    async def lease_holder(self, session_id: str) -> tuple[str, int] | None:
        lease = self._leases.get(session_id)
        return None if lease is None else (lease.owner, lease.fence)

    async def heartbeat(self, worker_id: str, ttl_s: float) -> None:
        return None

    async def worker_alive(self, worker_id: str) -> bool:
        return False  # one process, one worker: there is never another owner to ask

    async def request_handover(self, owner: str, session_id: str, new_owner: str) -> int:
        return 0

    async def handover_requests(
        self, worker_id: str, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        if on_ready is not None:
            on_ready()
        await asyncio.Event().wait()  # nobody else can ask: wait until cancelled
        yield {}

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._snapshots.clear()
