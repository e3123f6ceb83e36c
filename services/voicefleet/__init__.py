"""voicefleet: a fleet that runs production voice agents on the OpenAI Realtime API."""

__version__ = "0.1.0"
