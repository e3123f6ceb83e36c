"""Opening the upstream Realtime socket: GA shape only, the key kept here, bounded retries with jitter."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection

from voicefleet.config import Settings
from voicefleet.realtime.retry import UpstreamFailure, backoff_delay, is_retryable


class UpstreamUnavailable(RuntimeError):
    """The upstream could not be reached within the retry budget. The message is safe to show a client."""

    def __init__(self, message: str, failure: UpstreamFailure) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class UpstreamConnector:
    settings: Settings

    def url_for(self, model: str) -> str:
        return f"{self.settings.upstream_url}?{urlencode({'model': model})}"

    def headers(self) -> dict[str, str]:
        # GA only: never an OpenAI-Beta header (api.openai.com now rejects it with close 4000).
        key = self.settings.openai_api_key
        if not key:
            return {}
        if self.settings.upstream_auth == "azure":
            return {"api-key": key}
        return {"Authorization": f"Bearer {key}"}

    async def connect(self, model: str) -> tuple[ClientConnection, float]:
        """An open upstream socket and the seconds the successful attempt took."""
        attempts = max(1, self.settings.upstream_connect_attempts)
        last = UpstreamFailure()
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                connection = await websockets.connect(
                    self.url_for(model),
                    additional_headers=self.headers(),
                    open_timeout=self.settings.upstream_connect_timeout_s,
                    max_size=None,  # upstream frames are trusted; item.retrieved with audio can be large
                    compression=None,  # audio does not compress; deflate would only cost CPU
                    ping_interval=20.0,
                    ping_timeout=20.0,
                    user_agent_header="voicefleet",
                )
                return connection, time.perf_counter() - started
            except websockets.InvalidStatus as exc:
                last = UpstreamFailure(http_status=exc.response.status_code)
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                last = UpstreamFailure()
            if not is_retryable(last) or attempt == attempts - 1:
                break
            await asyncio.sleep(backoff_delay(attempt))
        detail = f"HTTP {last.http_status}" if last.http_status else "connection failed"
        raise UpstreamUnavailable(f"The realtime service is unavailable ({detail}); try again later.", last)
