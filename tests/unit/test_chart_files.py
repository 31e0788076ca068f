"""The chart's files agree with each other and with the project: every alert links to its own
runbook section, the dashboard marks settings changes, and the default image is the one
`make image` builds (named vb2po, tagged with the project version)."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "vb2po"
RUNBOOK_BASE = "https://github.com/example/vb2po/blob/main/helm/vb2po/README.md"


def alerts() -> list[dict]:
    groups = yaml.safe_load((CHART / "files" / "alerts.rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_links_to_its_own_runbook_section_in_the_chart_readme():
    readme = (CHART / "README.md").read_text()
    runbook = readme.split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    sections = set(re.findall(r"^### (\S+)$", runbook, re.MULTILINE))
    for rule in alerts():
        name = rule["alert"]
        assert rule["annotations"].get("runbook_url") == f"{RUNBOOK_BASE}#{name.lower()}", name
        assert name in sections, f"helm/vb2po/README.md has no runbook section '### {name}'"
    assert sections == {r["alert"] for r in alerts()}, "a runbook section for an alert that does not exist"


def test_the_chart_points_the_runbook_links_where_its_values_say():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["prometheusRule"]["runbookBaseUrl"] == RUNBOOK_BASE
    assert RUNBOOK_BASE in (CHART / "templates" / "prometheusrule.yaml").read_text()


def test_the_dashboard_marks_each_change_of_the_settings_version():
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    queries = [a for a in dashboard["annotations"]["list"] if "vb2po_settings_version" in a.get("expr", "")]
    assert len(queries) == 1 and queries[0]["enable"], "no annotation on vb2po_settings_version"
    assert queries[0]["datasource"]["uid"] == "${datasource}"


def test_the_default_image_is_the_one_make_image_builds():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["appVersion"] == version, "Chart.yaml appVersion must be pyproject's version (the image tag)"
    assert (values["image"]["repository"], values["image"]["tag"]) == ("vb2po", "")  # tag: appVersion
