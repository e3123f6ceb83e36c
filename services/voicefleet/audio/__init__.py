"""Audio helpers shared by the simulator, the client and tests: PCM16, resampling, G.711, WAV, VAD, speech."""
