"""Prometheus for the local fleet: worker targets in file_sd format, and a config that scrapes them.

Workers are scraped directly, never through the edge (the edge hides /metrics and would hash the scraper to
one worker). The targets file is rewritten atomically when a worker moves; Prometheus re-reads it by itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

WORKER_JOB = "voicefleet-worker"


def write_targets(path: Path, addresses: Sequence[str], labels: dict[str, str] | None = None) -> None:
    """file_sd JSON: one group with every worker, labelled so dashboards can tell a local fleet apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": list(addresses), "labels": {"fleet": "local", **(labels or {})}}]
    tmp = path.with_suffix(".json.new")
    tmp.write_text(json.dumps(groups, indent=2) + "\n")
    tmp.replace(path)


def build_config(targets_path: Path, deploy_config: Path | None) -> dict[str, Any]:
    """Reuse the deploy config's globals and rule files; replace its scrape jobs with the local file_sd one.

    The deploy config discovers workers the way its platform does (Kubernetes); here the workers are local
    processes, so only the discovery changes and the rules and alerts are exercised as written.
    """
    base: dict[str, Any] = {}
    if deploy_config is not None and deploy_config.exists():
        loaded = yaml.safe_load(deploy_config.read_text())
        base = loaded if isinstance(loaded, dict) else {}
    config: dict[str, Any] = {
        "global": base.get("global") or {"scrape_interval": "5s", "evaluation_interval": "5s"}
    }
    rules = (
        [str((deploy_config.parent / r).resolve()) for r in base.get("rule_files") or []]
        if deploy_config
        else []
    )
    if rules:
        config["rule_files"] = rules
    config["scrape_configs"] = [
        {
            "job_name": _worker_job_name(base),
            "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(targets_path)], "refresh_interval": "5s"}],
        }
    ]
    return config


def _worker_job_name(base: dict[str, Any]) -> str:
    """Keep the deploy config's job name for workers so its rules' ``job=`` matchers still select them."""
    for job in base.get("scrape_configs") or []:
        name = str(job.get("job_name", ""))
        if "worker" in name or "voicefleet" in name:
            return name
    return WORKER_JOB


def write_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def prometheus_argv(binary: str, config: Path, data_dir: Path, host: str, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={host}:{port}",
        "--storage.tsdb.retention.time=1d",
    ]
