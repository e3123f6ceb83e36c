"""The ``voicefleet`` command. Each sub-command lives in its own module, which adds its own arguments."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# sub-command -> (module, one-line help). The module provides add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "voicefleet.commands.run",
        "embedded default: one worker + in-process simulator + in-memory store",
    ),
    "worker": ("voicefleet.commands.worker", "one worker (uvicorn, uvloop when installed)"),
    "simulator": ("voicefleet.simulator.command", "a local server that speaks the GA Realtime protocol"),
    "fleet": ("voicefleet.fleet", "redis-server + N workers + nginx edge (+ simulator) on this machine"),
    "bench": (
        "voicefleet.bench.command",
        "load generator: turn latency percentiles, CPU and memory per session",
    ),
    "token": ("voicefleet.commands.token", "make a client key or inspect a resume token"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicefleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            # A sub-command whose module is absent is listed but cannot run; say so rather than crash --help.
            command_parser.set_defaults(_run=_missing(name))
            continue
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _missing(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(f"voicefleet {name}: not available in this build", file=sys.stderr)
        return 2

    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
