"""Redis session store: the only module that imports `redis`.

Keys (all of one session share the hash tag `{S}`, so they live in one slot of a Redis Cluster):

    vf:{S}:meta     HASH    tenant, model, config (JSON), token_version, owner, created_at, last_active_at, ended
    vf:{S}:items    STRING  the conversation records, one JSON array (rewritten per turn, never per audio frame)
    vf:{S}:fence    STRING  fencing token: INCR each time a worker takes the session
    vf:{S}:lease    STRING  "<owner>|<fence>" of the current owner
    vf:worker:<id>  STRING  heartbeat of a live worker (expires a few seconds after the worker dies)
    channel vf:handover:<id>  a worker taking one of <id>'s sessions asks it to let go

Every key of a session expires `ttl` seconds after its last write. A write carries the writer's fence; a
script refuses it when another worker has taken the session since (a stale owner that wakes up cannot write).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from voicefleet.stores.base import SessionSnapshot, StaleOwner, StoreUnavailable

_SAVE = """
local fence = redis.call('GET', KEYS[3])
if ARGV[1] ~= '' and fence and fence ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if fence then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
return 1
"""


def _keys(session_id: str) -> tuple[str, str, str, str]:
    base = f"vf:{{{session_id}}}"
    return f"{base}:meta", f"{base}:items", f"{base}:fence", f"{base}:lease"


class RedisStore:
    def __init__(self, url: str, *, ttl_s: float = 3600.0, client: Any = None) -> None:
        # Short timeouts: a checkpoint that cannot be written in a second is better retried than waited for.
        self.client: Any = client or redis.from_url(
            url,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=5,
            retry_on_timeout=False,
        )
        self.ttl_s = int(ttl_s)
        self._save = self.client.register_script(_SAVE)

    async def save(self, snapshot: SessionSnapshot, *, fence: int | None = None) -> None:
        meta, items, fence_key, _ = _keys(snapshot.session_id)
        fields: list[Any] = [
            "tenant", snapshot.tenant,
            "model", snapshot.model,
            "config", orjson.dumps(snapshot.config),
            "token_version", snapshot.token_version,
            "owner", snapshot.owner,
            "created_at", snapshot.created_at,
            "last_active_at", snapshot.last_active_at,
            "ended", int(snapshot.ended),
        ]  # fmt: skip
        args = ["" if fence is None else str(fence), self.ttl_s, orjson.dumps(snapshot.items), *fields]
        try:
            written = await self._save(keys=[meta, items, fence_key], args=args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not written:
            raise StaleOwner(f"session {snapshot.session_id} was taken over by another worker")

    async def load(self, session_id: str) -> SessionSnapshot | None:
        meta, items, _, _ = _keys(session_id)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(meta)
                pipe.get(items)
                raw, raw_items = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return SessionSnapshot(
            session_id=session_id,
            tenant=data.get("tenant", ""),
            model=data.get("model", ""),
            config=orjson.loads(data.get("config") or "{}"),
            items=orjson.loads(raw_items) if raw_items else [],
            token_version=int(data.get("token_version", "1")),
            owner=data.get("owner", ""),
            created_at=float(data.get("created_at", "0")),
            last_active_at=float(data.get("last_active_at", "0")),
            ended=data.get("ended") == "1",
        )

    async def acquire_lease(self, session_id: str, owner: str, ttl_s: float) -> int:
        _, _, fence_key, lease_key = _keys(session_id)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(fence_key)
                pipe.expire(fence_key, self.ttl_s)
                fence, _ = await pipe.execute()
                await self.client.set(lease_key, f"{owner}|{fence}", ex=max(1, int(ttl_s)))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return int(fence)

    async def lease_holder(self, session_id: str) -> tuple[str, int] | None:
        _, _, _, lease_key = _keys(session_id)
        try:
            raw = await self.client.get(lease_key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not raw:
            return None
        owner, _, fence = raw.decode().rpartition("|")
        return owner, int(fence or 0)

    async def release(self, session_id: str, owner: str) -> None:
        holder = await self.lease_holder(session_id)
        if holder is not None and holder[0] == owner:
            with contextlib.suppress(RedisError, OSError):
                await self.client.delete(_keys(session_id)[3])

    async def heartbeat(self, worker_id: str, ttl_s: float) -> None:
        try:
            await self.client.set(f"vf:worker:{worker_id}", "1", px=int(ttl_s * 1000))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def worker_alive(self, worker_id: str) -> bool:
        try:
            return bool(await self.client.exists(f"vf:worker:{worker_id}"))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def request_handover(self, owner: str, session_id: str, new_owner: str) -> int:
        """Ask `owner` to let go of `session_id`; the number of workers that heard it (0: none listening)."""
        message = orjson.dumps({"session_id": session_id, "new_owner": new_owner})
        try:
            return int(await self.client.publish(f"vf:handover:{owner}", message))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def handover_requests(
        self, worker_id: str, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Handover requests addressed to this worker, until cancelled. Reconnects after Redis outages."""
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(f"vf:handover:{worker_id}")
                if on_ready is not None:
                    on_ready()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield orjson.loads(message["data"])
            except (RedisError, OSError):
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
