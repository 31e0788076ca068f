"""The deployment artefacts pass their offline checks (devstack/check_deploy.sh): helm lint and
helm template of helm/vb2po with the default and the full values, every rendered object against the
Kubernetes schemas, the rendered settings against vb2po's settings model, promtool on the alert
rules and their unit tests, every dashboard query parsed as PromQL, and the image: built (or
reused) and smoke-tested from inside its root filesystem against the session's broker."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first run on a machine builds helm and the image: minutes; later runs: seconds
def test_chart_alert_rules_dashboard_and_image_pass_the_deploy_checks(kafka_bootstrap):
    result = subprocess.run(
        ["bash", "devstack/check_deploy.sh"], cwd=REPO, capture_output=True, text=True, timeout=1750,
        stdin=subprocess.DEVNULL, env={**os.environ, "VB2PO_SMOKE_KAFKA": kafka_bootstrap},
    )
    assert result.returncode == 0, (
        f"devstack/check_deploy.sh exited {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-8000:]}\n--- stderr (end) ---\n{result.stderr[-8000:]}"
    )
    assert "all deployment checks passed" in result.stdout
    assert "smoke: the image passed" in result.stdout
