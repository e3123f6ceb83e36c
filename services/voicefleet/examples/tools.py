"""Two example tools. They show the shape of real tools; they are not real services.

``get_weather`` answers from a small bundled table (no weather service is called: replace it with yours).
``check_url`` makes a real asynchronous network call with its own timeout, to show how I/O-bound tools behave.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from voicefleet.tools import tool

# Example data only: fixed values so demos and tests are repeatable.
_WEATHER_TABLE: dict[str, dict[str, Any]] = {
    "paris": {"temperature_c": 18, "conditions": "partly cloudy"},
    "london": {"temperature_c": 14, "conditions": "light rain"},
    "new york": {"temperature_c": 22, "conditions": "sunny"},
    "san francisco": {"temperature_c": 17, "conditions": "fog"},
    "tokyo": {"temperature_c": 25, "conditions": "clear"},
    "berlin": {"temperature_c": 12, "conditions": "overcast"},
}


@tool(
    description="Get the current weather for a city (example data).",
    parameters={
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
        "additionalProperties": False,
    },
    timeout_s=2.0,
)
def get_weather(location: str, unit: str = "celsius") -> dict[str, Any]:
    entry = _WEATHER_TABLE.get(location.strip().lower())
    if entry is None:
        return {"location": location, "error": "no weather data for this location"}
    temperature = entry["temperature_c"]
    if unit == "fahrenheit":
        temperature = round(temperature * 9 / 5 + 32)
    return {"location": location, "temperature": temperature, "unit": unit, "conditions": entry["conditions"]}


@tool(
    description="Check whether a web address answers, and with which HTTP status.",
    parameters={
        "type": "object",
        "properties": {"url": {"type": "string", "description": "An http:// address"}},
        "required": ["url"],
        "additionalProperties": False,
    },
    timeout_s=3.0,
)
async def check_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return {"url": url, "error": "only http:// addresses are supported by this example"}
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(
            f"HEAD {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = (await reader.readline()).decode(errors="replace").split()
    finally:
        writer.close()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    return {"url": url, "status": status, "reachable": status is not None}
