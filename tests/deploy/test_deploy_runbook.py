"""docs/runbook.md names only objects the manifests create, and every alert has a section to link to."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml
from deploy_helpers import ROOT, requires_kubectl

pytestmark = requires_kubectl

RUNBOOK = ROOT / "docs" / "runbook.md"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
SECRET_TEMPLATES = [
    ROOT / "k8s/base/secret.template.yaml",
    ROOT / "k8s/components/redis-managed/redis-secret.template.yaml",
]
KIND_ALIASES = {
    "deployment": "Deployment",
    "deploy": "Deployment",
    "service": "Service",
    "svc": "Service",
    "hpa": "HorizontalPodAutoscaler",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
    "poddisruptionbudget": "PodDisruptionBudget",
    "ingress": "Ingress",
    "configmap": "ConfigMap",
    "secret": "Secret",
    "scaledobject": "ScaledObject",
    "servicemonitor": "ServiceMonitor",
    "prometheusrule": "PrometheusRule",
    "networkpolicy": "NetworkPolicy",
}


def kubectl_commands(text: str) -> list[list[str]]:
    """Each kubectl invocation in the runbook, in code blocks or inline code, as words."""
    snippets = re.findall(r"```[^\n]*\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text)
    commands = []
    for snippet in snippets:
        joined = snippet.replace("\\\n", " ")
        for line in joined.splitlines():
            code = re.sub(r"\s#\s.*$", "", line)
            for part in re.split(r"\||&&|;", code):
                words = shlex.split(part, posix=True) if part.count("'") % 2 == 0 else part.split()
                if words and words[0] == "kubectl":
                    commands.append(words)
    return commands


def references(command: list[str]) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """(namespaces, (kind, name) pairs, kustomize directories) one command names."""
    namespaces: set[str] = set()
    objects: set[tuple[str, str]] = set()
    directories: set[str] = set()
    for i, word in enumerate(command):
        nxt = command[i + 1] if i + 1 < len(command) else ""
        if word in {"-n", "--namespace"}:
            namespaces.add(nxt)
        elif word.startswith("--namespace="):
            namespaces.add(word.split("=", 1)[1])
        elif word == "-k" or (word in {"kustomize"} and nxt and not nxt.startswith("-")):
            directories.add(nxt)
        kind, slash, name = word.partition("/")
        if slash and kind in KIND_ALIASES and name and "<" not in name:
            objects.add((KIND_ALIASES[kind], name))
    if command[1:3] == ["create", "namespace"]:
        namespaces.add(command[3])
    if command[1:3] == ["create", "secret"]:
        objects.add(("Secret", command[4]))
    return namespaces, objects, directories


def existing(rendered: dict[str, list[dict[str, Any]]]) -> tuple[set[str], set[tuple[str, str]]]:
    objects = [o for overlay in rendered.values() for o in overlay]
    objects += [doc for path in SECRET_TEMPLATES for doc in yaml.safe_load_all(path.read_text())]
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    return namespaces, {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_runbook_commands_name_objects_that_exist(rendered: dict[str, list[dict[str, Any]]]) -> None:
    commands = kubectl_commands(RUNBOOK.read_text())
    assert len(commands) >= 10
    known_namespaces, known_objects = existing(rendered)
    seen_deployment = False
    for command in commands:
        namespaces, objects, directories = references(command)
        assert namespaces <= known_namespaces, " ".join(command)
        assert objects <= known_objects, " ".join(command)
        for directory in directories:
            assert (ROOT / directory / "kustomization.yaml").exists(), " ".join(command)
        seen_deployment |= ("Deployment", "voicefleet-worker") in objects
    assert seen_deployment


def test_reference_parser_catches_a_wrong_name() -> None:
    namespaces, objects, directories = references(
        shlex.split("kubectl -n voicefleet-prod scale deployment/voicefleet --replicas=3 -k k8s/overlays/x")
    )
    assert namespaces == {"voicefleet-prod"}
    assert objects == {("Deployment", "voicefleet")}
    assert directories == {"k8s/overlays/x"}


def anchors(text: str) -> set[str]:
    """Explicit <a id> anchors plus the ids GitHub derives from headings."""
    explicit = set(re.findall(r'<a id="([^"]+)"', text))
    headings = re.findall(r"^#+\s+(.+)$", text, re.MULTILINE)
    derived = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    return explicit | derived


def alert_rules() -> list[dict[str, Any]]:
    files = sorted([*RULES_DIR.glob("*.yml"), *RULES_DIR.glob("*.yaml")])
    return [
        rule
        for path in files
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        for rule in group.get("rules", [])
        if "alert" in rule
    ]


def test_every_alert_has_a_runbook_section() -> None:
    rules = alert_rules()
    if not rules:
        pytest.skip("deploy/prometheus/rules defines no alerts yet")
    found = anchors(RUNBOOK.read_text())
    missing = sorted({r["alert"] for r in rules if f"alert-{r['alert'].lower()}" not in found})
    assert missing == []


def test_every_alert_runbook_link_resolves() -> None:
    found = anchors(RUNBOOK.read_text())
    for rule in alert_rules():
        link = rule.get("annotations", {}).get("runbook", "") or rule.get("annotations", {}).get(
            "runbook_url", ""
        )
        if "#" in link:
            assert link.split("#", 1)[0].endswith("docs/runbook.md"), link
            assert link.split("#", 1)[1] in found, f"{rule['alert']}: {link}"


def test_runbook_links_within_itself_resolve() -> None:
    text = RUNBOOK.read_text()
    found = anchors(text)
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in found, target
