"""The deployment artefacts pass their offline checks (devstack/check_deploy.sh): helm lint and
helm template of helm/vb2po with the default and the full values, every rendered object against the
Kubernetes schemas, the rendered settings against vb2po's settings model, promtool on the alert
rules and their unit tests, and every dashboard query parsed as PromQL."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1800)  # the first run on a machine builds helm from source: minutes; later runs: seconds
def test_chart_alert_rules_and_dashboard_pass_the_offline_deploy_checks():
    result = subprocess.run(
        ["bash", "devstack/check_deploy.sh"], cwd=REPO, capture_output=True, text=True, timeout=1750,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"devstack/check_deploy.sh exited {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-8000:]}\n--- stderr (end) ---\n{result.stderr[-8000:]}"
    )
    assert "all deployment checks passed" in result.stdout
