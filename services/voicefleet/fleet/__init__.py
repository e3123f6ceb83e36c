"""Local fleet: redis-server, the simulator, N workers and the nginx edge under one supervisor."""

from voicefleet.fleet.command import add_arguments, run

__all__ = ["add_arguments", "run"]
