"""What the worker spends its CPU on: py-spy samples of a worker under load, folded by area and by function.

py-spy runs as its own process in --nonblocking mode (it does not pause the worker to sample), during a phase
that is not one of the measured repetitions, so sampling never bends the reported figures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

# Where a leaf frame's file lives -> the area it is charged to; first match wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("voicefleet/realtime/", "session core (voicefleet.realtime)"),
    ("voicefleet/worker/", "worker I/O (voicefleet.worker)"),
    ("voicefleet/observability/", "metrics and logging (voicefleet.observability)"),
    ("prometheus_client/", "prometheus_client"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn (ASGI websockets glue)"),
    ("websockets/", "websockets (framing, both sockets)"),
    ("asyncio/", "asyncio (queues, tasks, futures)"),
    ("uvloop", "uvloop"),
    ("structlog/", "structlog"),
)


def pyspy_available() -> bool:
    return shutil.which("py-spy") is not None or Path(_venv_pyspy()).exists()


def _venv_pyspy() -> str:
    import sys

    return str(Path(sys.executable).parent / "py-spy")


def start_recording(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy") or _venv_pyspy()
    command = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        "250",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _area(frame: str) -> str:
    if frame.startswith("select (") and "selectors.py" in frame:
        return "waiting in epoll (idle, not work)"
    for needle, area in AREAS:
        if needle in frame:
            return area
    if "<frozen" in frame or "/lib/python3" in frame:
        return "Python standard library"
    return "other"


def _short(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`: one row per function, not per line."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})"


def fold(raw: str, top: int = 15) -> dict[str, Any]:
    """Self time (leaf frames) by area and by function, as shares of all samples; plus inclusive time of the
    worker's own functions (what a change in our code could save)."""
    total = 0
    areas: dict[str, int] = {}
    leaves: dict[str, int] = {}
    ours: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        areas[_area(leaf)] = areas.get(_area(leaf), 0) + count
        leaves[_short(leaf)] = leaves.get(_short(leaf), 0) + count
        for frame in {_short(f) for f in frames if "voicefleet/" in f}:
            ours[frame] = ours.get(frame, 0) + count

    def shares(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [(name, round(100.0 * count / max(1, total), 1)) for name, count in ranked]

    return {"samples": total, "areas": shares(areas), "self": shares(leaves), "inclusive_ours": shares(ours)}


def fold_file(path: Path, top: int = 15) -> dict[str, Any]:
    return fold(path.read_text(errors="replace"), top) if path.exists() else {"samples": 0}
