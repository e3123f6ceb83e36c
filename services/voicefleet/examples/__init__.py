"""Example server-side tools shipped with voicefleet (enable with VOICEFLEET_TOOLS=voicefleet.examples.tools)."""
