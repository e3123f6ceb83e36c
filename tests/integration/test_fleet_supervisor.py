"""The fleet supervisor with real redis-server and nginx, and stand-in workers (see edge/stand_in_worker.py):
restarts, rolling restarts, Prometheus targets and clean shutdown do not depend on what a worker does inside."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from edge.harness import eventually, open_from, source_address

from voicefleet.fleet import prometheus
from voicefleet.fleet.procs import free_port
from voicefleet.fleet.supervisor import Fleet, FleetOptions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("nginx") is None or shutil.which("redis-server") is None,
        reason="needs nginx and redis-server (apt-get install nginx redis-server)",
    ),
]

STAND_IN = (sys.executable, str(Path(__file__).parent / "edge" / "stand_in_worker.py"))


def all_pids(fleet: Fleet) -> set[int]:
    """Every process of the fleet, including children (nginx workers)."""
    pids: set[int] = set()
    for proc in fleet.processes.values():
        if proc.pid is not None and psutil.pid_exists(proc.pid):
            pids.add(proc.pid)
            pids.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
    return pids


def assert_all_gone(pids: set[int]) -> None:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEFLEET_")}
    # An upstream URL is given, so no simulator starts: these tests are about the supervisor alone.
    env["VOICEFLEET_UPSTREAM_URL"] = "ws://127.0.0.1:9/v1/realtime"
    options = FleetOptions(
        state_dir=tmp_path / "fleet",
        workers=3,
        edge_port=free_port(),
        env=env,
        worker_command=STAND_IN,
        restart_backoff_s=0.2,
        edge_fail_timeout_s=1,
    )
    fleet = Fleet(options, say=lambda _: None)
    fleet.start()
    pids = all_pids(fleet)
    try:
        yield fleet
    finally:
        fleet.stop()
        assert_all_gone(pids | all_pids(fleet))


async def worker_seen_from(fleet: Fleet, subnet: int) -> dict[str, object]:
    async with open_from(fleet.options.edge_port, source_address(subnet)) as ws:
        hello: dict[str, object] = json.loads(await ws.recv())
        return hello


def test_start_writes_prometheus_targets_for_every_worker(fleet: Fleet) -> None:
    groups = json.loads(fleet.targets_path.read_text())
    assert groups[0]["targets"] == [f"127.0.0.1:{fleet.worker_ports[n]}" for n in fleet.worker_names]
    assert sorted(fleet.processes) == ["edge", "redis", "worker-1", "worker-2", "worker-3"]
    assert fleet.redis_url.startswith("redis://127.0.0.1:")


async def test_a_killed_worker_is_restarted_on_the_same_port(fleet: Fleet) -> None:
    victim = fleet.processes["worker-2"]
    old_pid, port = victim.pid, fleet.worker_ports["worker-2"]
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    stop = threading.Event()
    loop = threading.Thread(target=fleet.run, args=(stop,), daemon=True)
    loop.start()

    async def restarted() -> bool:
        return victim.pid != old_pid and victim.healthy()

    try:
        await eventually(restarted, 20, "worker-2 to be restarted and ready")
    finally:
        stop.set()
        loop.join(30)
    assert fleet.worker_ports["worker-2"] == port
    assert victim.starts == 2
    # And the edge reaches every worker again, the restarted one included.
    seen = {str((await worker_seen_from(fleet, subnet))["worker"]) for subnet in range(1, 30)}
    assert seen == set(fleet.worker_names)


async def test_rolling_restart_replaces_every_worker_while_new_sessions_keep_opening(fleet: Fleet) -> None:
    before = {n: fleet.processes[n].pid for n in fleet.worker_names}
    done = threading.Event()
    failures: list[str] = []
    opened = 0

    def restart() -> None:
        try:
            fleet.rolling_restart()
        finally:
            done.set()

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    # Clients keep arriving from many sites during the whole restart; nginx must send each to a live worker.
    while not done.is_set():
        for subnet in range(1, 30):
            try:
                await worker_seen_from(fleet, subnet)
                opened += 1
            except Exception as exc:
                failures.append(f"{subnet}: {exc!r}")
    thread.join(30)
    after = {n: fleet.processes[n].pid for n in fleet.worker_names}
    assert all(after[n] != before[n] for n in fleet.worker_names)
    assert all(fleet.processes[n].healthy() for n in fleet.worker_names)
    assert failures == []
    assert opened > 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_voicefleet_fleet_command_leaves_no_process_behind(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEFLEET_")}
    env["VOICEFLEET_UPSTREAM_URL"] = "ws://127.0.0.1:9/v1/realtime"
    edge_port = free_port()
    argv = [sys.executable, "-m", "voicefleet.cli", "fleet", "--workers", "2", "--edge-port", str(edge_port)]
    argv += ["--state-dir", str(tmp_path / "fleet"), "--worker-command", shlex.join(STAND_IN)]
    command = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert command.stdout is not None
        banner = ""
        for line in command.stdout:  # the banner is printed once everything is healthy
            banner += line
            if line.startswith("Ctrl-C"):
                break
        assert f"ws://127.0.0.1:{edge_port}/v1/realtime" in banner
        assert "api key   vf-dev-" in banner
        children = psutil.Process(command.pid).children(recursive=True)
        # redis-server, two workers, nginx master and its workers
        assert len(children) >= 5, children
        command.send_signal(stop_signal)
        assert command.wait(60) == 0
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(10)
    assert_all_gone({c.pid for c in children})
    assert not (tmp_path / "fleet" / "fleet.pid").exists()


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_local_prometheus_config_keeps_deploy_rules_and_job_and_scrapes_the_targets_file(
    tmp_path: Path,
) -> None:
    deploy = tmp_path / "deploy" / "prometheus.yml"
    (tmp_path / "deploy" / "rules").mkdir(parents=True)
    (tmp_path / "deploy" / "rules" / "r.yml").write_text("groups: []\n")
    deploy.write_text(
        "global: {scrape_interval: 7s}\nrule_files: [rules/*.yml]\n"
        "scrape_configs: [{job_name: voicefleet-workers, kubernetes_sd_configs: [{role: pod}]}]\n"
    )
    targets = tmp_path / "local" / "targets.json"
    prometheus.write_targets(targets, ["127.0.0.1:8001", "127.0.0.1:8002"])
    config = prometheus.build_config(targets, deploy)
    prometheus.write_config(tmp_path / "local" / "prometheus.yml", config)
    assert config["global"] == {"scrape_interval": "7s"}
    assert config["rule_files"] == [str(tmp_path / "deploy" / "rules" / "*.yml")]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "voicefleet-workers"
    assert job["file_sd_configs"][0]["files"] == [str(targets)]
    check = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "local" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
