"""A raw client that keeps what a resuming client needs: its session id, latest token, and event count."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from tests.support.realtime_client import open_session, send


class ResumableClient:
    def __init__(self, **open_kw: Any) -> None:
        # Given to every socket of the session, so a resume keeps what the first connect chose: the key, or
        # local_addr=(source, 0), the source address an ip_hash edge routes by.
        self.open_kw = open_kw
        self.ws: ClientConnection | None = None
        self.received = 0  # server events received over every socket of this session (what last_seq counts)
        self.event_ids: list[str] = []
        self.session_id = ""
        self.token = ""
        self.sessions: list[dict[str, Any]] = []  # every fleet.session seen
        self.migrations: list[dict[str, Any]] = []

    async def start(self, port: int, **kw: Any) -> None:
        self.ws = await open_session(port, **{**self.open_kw, **kw})

    async def resume(self, port: int, **kw: Any) -> None:
        query = f"model=gpt-realtime&session_id={self.session_id}&resume_token={self.token}&last_seq={self.received}"
        self.ws = await open_session(port, query=query, **{**self.open_kw, **kw})

    def drop(self) -> None:
        """Lose the connection the way a network does: no close handshake."""
        assert self.ws is not None and self.ws.transport is not None
        self.ws.transport.abort()

    async def recv(self, within_s: float = 15.0) -> dict[str, Any]:
        assert self.ws is not None
        event: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), within_s))
        self.received += 1
        self.event_ids.append(str(event.get("event_id")))
        if event["type"] == "fleet.session":
            self.session_id, self.token = event["session_id"], event["resume_token"]
            self.sessions.append(event)
            # The event says which number it is: the count of a client that lost nothing.
            assert event["seq"] == self.received, (event["seq"], self.received)
        elif event["type"] == "fleet.migrate":
            self.token = event["resume_token"]
            self.migrations.append(event)
        return event

    async def until(
        self, event_type: str, within_s: float = 20.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            event = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if event["type"] == event_type:
                return event, seen
            seen.append(event)

    async def say(self, text: str) -> None:
        """A user turn as text, and a request for the reply."""
        assert self.ws is not None
        await send(self.ws, "conversation.item.create", item={"type": "message", "role": "user",
                                                                "content": [{"type": "input_text", "text": text}]})  # fmt: skip
        await send(self.ws, "response.create")
