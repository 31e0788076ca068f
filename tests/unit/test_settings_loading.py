"""Loading the settings: pydantic-settings' YAML source for the file, VB2PO_* variables on top."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from vb2po import settings as settings_module

MINIMAL = {
    "lookback_date": "2026-01-01",
    "companies": [{"company_no": 1, "odbc": "Driver=SQLite3;Database=/nowhere/F0001.db"}],
    "invoice_clients": [{"name": "hovedkontor", "client_key": "k"}],
    "kafka": {"bootstrap_servers": "file:9092", "topics": {"partitions": 3}},
}


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("VB2PO_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    return path


def test_the_file_is_read(settings_file):
    loaded = settings_module.load(settings_file)
    assert (loaded.kafka.bootstrap_servers, loaded.kafka.topics.partitions) == ("file:9092", 3)
    assert loaded.companies[0].odbc.get_secret_value().startswith("Driver=SQLite3")


def test_an_environment_variable_wins_over_the_file_and_leaves_the_rest_of_its_section(settings_file, monkeypatch):
    monkeypatch.setenv("VB2PO_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    loaded = settings_module.load(settings_file)
    assert (loaded.kafka.bootstrap_servers, loaded.kafka.topics.partitions) == ("env:9092", 3)


def test_a_list_comes_whole_from_one_variable(settings_file, monkeypatch):
    monkeypatch.setenv("VB2PO_INVOICE_CLIENTS", '[{"name": "filial", "client_key": "s", "company_no": 1}]')
    assert [c.name for c in settings_module.load(settings_file).invoice_clients] == ["filial"]


def test_vb2po_config_names_the_file_when_no_path_is_given(settings_file, monkeypatch):
    monkeypatch.setenv(settings_module.CONFIG_ENV, str(settings_file))
    assert settings_module.load().kafka.bootstrap_servers == "file:9092"


def test_a_named_file_that_does_not_exist_is_an_error_not_the_defaults(tmp_path, settings_file):
    with pytest.raises(FileNotFoundError, match="not found"):
        settings_module.load(tmp_path / "missing.yaml")


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, settings_file):
    path = tmp_path / "list.yaml"
    path.write_text("- lookback_date: 2026-01-01\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        settings_module.load(path)


def test_a_misspelled_key_is_refused(settings_file):
    settings_file.write_text(yaml.safe_dump({**MINIMAL, "kafak": {"bootstrap_servers": "x:1"}}))
    with pytest.raises(ValidationError, match="kafak"):
        settings_module.load(settings_file)
