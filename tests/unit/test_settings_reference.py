"""One settings reference: the Settings model is the source; docs/settings.md and the chart's
values.schema.json are generated from it (`python -m vb2po.settings_reference`), and
settings.example.yaml and the chart's values.yaml name every setting, and only real ones."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vb2po import settings_reference as reference
from vb2po.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "settings.example.yaml"
CHART = REPO / "helm" / "vb2po"
REGENERATE = f"run `{reference.COMMAND}` and commit the result"
# A commented-out key (`  # sasl_mechanism: SCRAM-SHA-512`) documents an optional setting.
COMMENTED_KEY = re.compile(r"^(\s*)# ?([a-z_][a-z0-9_]*:(\s|$).*)$")


def documented_paths(data: dict[str, Any], prefix: str = "") -> set[str]:
    """Paths named in a settings mapping: `kafka.topics.payments`, `companies[].odbc`, ..."""
    paths: set[str] = set()
    for key, value in data.items():
        path = prefix + str(key)
        if isinstance(value, dict) and value:  # (an empty mapping is a setting's value: `codes: {}`)
            paths |= documented_paths(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                paths |= documented_paths(item, path + "[].")
        else:
            paths.add(path)
    return paths


def expected_paths(leaves: set[str], documented: set[str]) -> set[str]:
    """The model's leaf settings; a list of sections left empty counts as documented by its name."""
    lists = {p.split("[]")[0] for p in leaves if "[]" in p}
    empty = {p for p in lists if p in documented}
    return {p for p in leaves if p.split("[]")[0] not in empty} | empty


def compare(documented: set[str], expected: set[str], where: str) -> None:
    missing, unknown = sorted(expected - documented), sorted(documented - expected)
    assert not (missing or unknown), (
        f"{where}: missing settings {missing}; names no setting has (misspelled or removed?) {unknown}. "
        "Every setting of vb2po/settings.py must be there, with a comment (docs/settings.md has the words)")


def test_the_settings_reference_and_the_values_schema_are_generated_from_the_current_model():
    stale = reference.stale(REPO)
    assert not stale, f"{', '.join(map(str, stale))} no longer match(es) vb2po/settings.py: {REGENERATE}"


def test_settings_example_names_every_setting_and_no_other():
    text = "\n".join(COMMENTED_KEY.sub(r"\1\2", line) for line in EXAMPLE.read_text().splitlines())
    data = yaml.safe_load(text)
    documented = documented_paths(data)
    compare(documented, expected_paths(reference.leaf_paths(), documented), "settings.example.yaml")
    Settings(**data)  # and, with the optional keys filled in, it is a valid settings file


def test_chart_values_name_every_setting_except_secrets_and_what_the_chart_sets():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = documented_paths(values["settings"])
    left_out = reference.secret_paths() | set(reference.CHART_SETS)
    leaves = {p for p in reference.leaf_paths()
              if not any(p == q or p.startswith(q + ".") or p.startswith(q + "[]") for q in left_out)}
    compare(documented, expected_paths(leaves, documented), "helm/vb2po/values.yaml `settings`")


def test_the_settings_the_chart_sets_are_the_ones_its_templates_set():
    templates = "\n".join(p.read_text() for p in (CHART / "templates").glob("*"))
    in_templates = set(re.findall(r"name: (VB2PO_[A-Z0-9_]+)", templates)) - {"VB2PO_CONFIG"}
    assert in_templates == {reference.env_name(p) for p in reference.CHART_SETS}, (
        "the chart's templates set other VB2PO_ variables than vb2po/settings_reference.py's CHART_SETS says: "
        f"templates {sorted(in_templates)}")


def test_values_schema_leaves_out_secrets_and_refuses_unknown_settings():
    schema = reference.values_schema()["properties"]["settings"]
    assert schema["additionalProperties"] is False
    assert not {"companies", "invoice_clients", "metrics_port"} & set(schema["properties"])
    assert "application_key" not in schema["properties"]["poweroffice"]["properties"]
    assert "instance_id" not in schema["properties"]["consumer"]["properties"]
    assert schema["properties"]["kafka"]["properties"]["topics"]["additionalProperties"] is False


@pytest.mark.parametrize("path, env", [("kafka.bootstrap_servers", "VB2PO_KAFKA__BOOTSTRAP_SERVERS"),
                                       ("lookback_date", "VB2PO_LOOKBACK_DATE")])
def test_environment_variable_names_follow_the_path(path, env):
    assert reference.env_name(path) == env
