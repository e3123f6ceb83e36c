"""Each overlay is rendered once per test session: kubectl kustomize is the slow part of these checks."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_helpers import KUBECTL, OVERLAYS, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """overlay name -> rendered objects."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed, so the kustomize overlays cannot be rendered")
    return {overlay: render(overlay) for overlay in OVERLAYS}
