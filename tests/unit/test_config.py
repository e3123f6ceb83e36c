"""Settings from the environment: names as documented, bad values named, keys kept only as digests."""

from __future__ import annotations

import pytest

from voicefleet.config import ConfigError, Settings


def test_documented_names_are_read() -> None:
    settings = Settings.from_env(
        {
            "VOICEFLEET_TOOLS": "voicefleet.examples.tools",
            "VOICEFLEET_REDIS_URL": "redis://127.0.0.1:6390/0",
            "VOICEFLEET_UPSTREAM_URL": "ws://127.0.0.1:9/v1/realtime",
            "VOICEFLEET_API_KEYS": "alpha, beta",
            "VOICEFLEET_TOKEN_SECRET": "s3cret",
            "VOICEFLEET_EXPOSE_SERVER_POLICY": "true",
            "VOICEFLEET_LOCKED_FIELDS": "instructions,audio.output.voice",
            "OPENAI_API_KEY": "sk-upstream",
        }
    )
    assert settings.tools == "voicefleet.examples.tools"
    assert settings.redis_url.endswith(":6390/0")
    assert settings.upstream_url == "ws://127.0.0.1:9/v1/realtime"
    assert settings.token_secret == b"s3cret"
    assert settings.expose_server_policy is True
    assert settings.locked_fields == ("instructions", "audio.output.voice")
    assert settings.check_client_key("beta") and not settings.check_client_key("gamma")
    assert "alpha" not in repr(settings) and "sk-upstream" not in repr(settings)


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="VOICEFLEET_MAX_SESSIONS"):
        Settings.from_env({"VOICEFLEET_MAX_SESSIONS": "lots"})
    with pytest.raises(ConfigError, match="VOICEFLEET_UPSTREAM_AUTH"):
        Settings.from_env({"VOICEFLEET_UPSTREAM_AUTH": "basic"})


def test_command_line_overrides_count_for_the_default_worker_id() -> None:
    settings = Settings.from_env({}, port=8123)
    assert settings.port == 8123 and settings.worker_id.endswith(":8123")
    named = Settings.from_env({"VOICEFLEET_WORKER_ID": "edge-a-1"}, port=8123)
    assert named.worker_id == "edge-a-1"
