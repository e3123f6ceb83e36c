"""What the simulator received: its record of client events, read over HTTP."""

from __future__ import annotations

from typing import Any

import httpx


async def simulator_sessions(port: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://127.0.0.1:{port}/v1/_simulator/sessions")
    response.raise_for_status()
    sessions: list[dict[str, Any]] = response.json()["sessions"]
    return sessions


async def latest_session_events(port: int) -> list[dict[str, Any]]:
    """The client events (audio stripped) of the most recent upstream session, in arrival order."""
    sessions = await simulator_sessions(port)
    assert sessions, "the simulator recorded no session"
    return [entry["event"] for entry in sessions[-1]["events"]]
