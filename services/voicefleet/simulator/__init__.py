"""A local server that speaks the OpenAI GA Realtime protocol: real VAD on real audio, scripted replies and tool
calls, latency profiles and fault injection. The upstream for development, tests, CI and load tests."""
