"""Server-side tools for the conversation-control tests: the shipped examples plus one that never answers in time."""

from __future__ import annotations

import asyncio

from voicefleet.examples.tools import check_url, get_weather
from voicefleet.tools import tool

__all__ = ["check_url", "get_weather", "slow_lookup"]


@tool(description="A lookup that is far too slow (it stands for a hung backend).", timeout_s=0.3)
async def slow_lookup() -> str:
    await asyncio.sleep(30)
    return "too late"
