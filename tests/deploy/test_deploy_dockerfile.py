"""Static checks of deploy/Dockerfile: there is no Docker engine here, so prove what can be proved without one."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from deploy_helpers import ROOT

from voicefleet import cli
from voicefleet.config import Settings

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPILER = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|python3-dev|libc6-dev)\b")
PACKAGE_INSTALL = re.compile(r"\b(apt-get|apt|apk|yum|dnf)\s+(install|add)\b")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_stages(text: str) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    if args.startswith("["):
        parsed: list[str] = json.loads(args)
        return parsed
    return shlex.split(args)


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(path, "*/" + p)
        for p in patterns
    )


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_image_is_multi_stage_on_a_slim_python_311_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    text = DOCKERFILE.read_text()
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    for stage in stages:
        base = stage.base
        if base == "${PYTHON_IMAGE}":
            assert default_base, "the base image ARG needs a default"
            base = default_base.group(1)
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base


def test_every_copy_source_exists_and_is_not_dockerignored(stages: list[Stage]) -> None:
    patterns = dockerignore_patterns()
    copied = 0
    for stage in stages:
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            parts = [p for p in exec_form(args) if not p.startswith("--")]
            for source in parts[:-1]:
                copied += 1
                assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
                assert not ignored(source.rstrip("/"), patterns), (
                    f"COPY {source} is excluded by .dockerignore"
                )
    assert copied > 0


def test_dockerignore_keeps_the_venv_git_and_tests_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", ".git", "tests", ".venv/bin/python", "tests/deploy/test_x.py"):
        assert ignored(path, patterns), path
    for path in ("pyproject.toml", "services/voicefleet/cli.py"):
        assert not ignored(path, patterns), path


def entry_command(final: Stage) -> list[str]:
    entrypoint = final.all("ENTRYPOINT")
    cmd = final.all("CMD")
    return (exec_form(entrypoint[-1]) if entrypoint else []) + (exec_form(cmd[-1]) if cmd else [])


def test_entry_command_is_the_worker_on_all_interfaces(final: Stage) -> None:
    command = entry_command(final)
    assert command[:2] == ["voicefleet", "worker"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "worker" in cli.COMMANDS
    done = subprocess.run(
        [sys.executable, "-m", "voicefleet.cli", *command[1:2], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_entry_command_arguments_are_accepted_by_the_worker_command(final: Stage) -> None:
    module_name = cli.COMMANDS["worker"][0]
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{module_name} is not in this build yet, so its arguments cannot be checked")
    args = cli.build_parser().parse_args(entry_command(final)[1:])
    assert args.command == "worker"


def test_exposed_port_is_the_workers_port_everywhere(final: Stage) -> None:
    port = Settings().port
    assert final.all("EXPOSE") == [str(port)]
    command = entry_command(final)
    assert command[command.index("--port") + 1] == str(port)
    healthcheck = final.all("HEALTHCHECK")
    assert len(healthcheck) == 1
    assert f"127.0.0.1:{port}/healthz" in healthcheck[0]


def test_healthcheck_uses_python_not_curl(final: Stage) -> None:
    healthcheck = final.all("HEALTHCHECK")[0]
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    compile(command[2], "<healthcheck>", "exec")


def test_final_stage_runs_as_a_non_root_numeric_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-zero uid lets runAsNonRoot verify it"


def build_tooling(stage: Stage) -> list[str]:
    """RUN lines of a stage that install system packages or name a compiler."""
    return [args for args in stage.all("RUN") if COMPILER.search(args) or PACKAGE_INSTALL.search(args)]


def test_final_stage_installs_no_compiler(stages: list[Stage], final: Stage) -> None:
    assert build_tooling(final) == []
    # The check does see build tools where they belong, so an empty list above means something.
    assert build_tooling(stages[0]) != []


def test_final_stage_is_ready_for_a_read_only_root_filesystem(final: Stage) -> None:
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "TMPDIR=/tmp" in env


def test_parser_sees_continuations_and_stage_names() -> None:
    parsed = parse_stages("FROM a AS one\nRUN x \\\n  && y\n# note\nFROM b\nUSER 5\n")
    assert [s.name for s in parsed] == ["one", "1"]
    assert parsed[0].all("RUN") == ["x  && y"]
    assert parsed[1].all("USER") == ["5"]
