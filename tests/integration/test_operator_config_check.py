"""`vb2po config check` against the real broker, real ODBC drivers (SQLite, PostgreSQL) and the
PowerOffice sandbox: it passes a correct setup, and for each thing that is wrong it says what
and how to fix it, exits non-zero, and never prints a secret."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import ODBC_PASSWORD, operator_settings, run_cli, settings_file

pytestmark = pytest.mark.integration

VB2PO = str(Path(sys.executable).parent / "vb2po")


def secrets_of(data: dict) -> list[str]:
    return [ODBC_PASSWORD, data["poweroffice"]["application_key"], data["poweroffice"]["subscription_key"],
            *(c["client_key"] for c in data["invoice_clients"]), *(c["odbc"] for c in data["companies"])]


def check(capsys, path: Path) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "--config", str(path), "config", "check")
    return code, out + err


def test_a_correct_setup_passes_every_check(kafka_bootstrap, sandbox_server, company_db, tmp_path):
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: company_db}, {1: SANDBOX_CLIENT_KEY})
    path = settings_file(tmp_path, data)
    done = subprocess.run([VB2PO, "--config", str(path), "config", "check"], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for subject in ("settings", "kafka", "visma company 1", "poweroffice client client-1"):
        assert f"OK    {subject}:" in done.stdout
    assert "marker column Gr4" in done.stdout and "bank account 1920 exists" in done.stdout
    assert "WARN  admin: user 'nils' has no permission" in done.stdout  # a user in no group: worth a word
    assert done.stdout.rstrip().endswith("vb2po config check: all good (1 warning(s))")
    assert not [s for s in secrets_of(data) if s in output]


@pytest.mark.parametrize("field, value, where, problem", [
    ("Gr9", 1, "visma company 1: marker.field", "does not exist in the table"),  # a free field this CustTr lacks
    ("Gr99", 1, "settings", "not one of Visma's free fields"),
    ("JNo", 1, "settings", "not one of Visma's free fields"),
    ("ChTmms", 1, "settings", "not one of Visma's free fields"),
    ("VoTp", 1, "settings", "not one of Visma's free fields"),
    ("DueDt", 1, "settings", "not one of Visma's free fields"),
    ("Gr4; DROP TABLE CustTr", 1, "settings", "not one of Visma's free fields"),
    ("Gr4", "processed", "settings", "must be a whole number"),
    ("Gr4", 0, "settings", "would mark every untouched row"),
    ("Gr4", 10**30, "settings", "does not fit Visma's integer fields"),
    ("Inf2", "a value longer than the sixty characters that this free text field in CustTr can hold", "settings",
     "at most 60 printable characters"),
], ids=["missing", "not-free", "key", "change-column", "read-column", "data-column", "not-an-identifier", "wrong-type",
        "default-value", "too-large", "too-long"])
def test_an_unusable_marker_field_is_refused_with_the_reason_and_a_fix(kafka_bootstrap, sandbox_server,
                                                                       sqlite_company_db, tmp_path, capsys,
                                                                       field, value, where, problem):
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db}, {1: SANDBOX_CLIENT_KEY},
                             marker={"field": field, "value": value})
    code, output = check(capsys, settings_file(tmp_path, data))
    assert code == 1
    assert f"FAIL  {where}" in output and "marker" in output and problem in output
    assert "vb2po config check: 1 problem" in output


def test_a_free_text_field_holding_the_marker_value_is_fine(kafka_bootstrap, sandbox_server, sqlite_company_db,
                                                           tmp_path, capsys):
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db}, {1: SANDBOX_CLIENT_KEY},
                             marker={"field": "inf2", "value": "VB2PO"})
    code, output = check(capsys, settings_file(tmp_path, data))
    assert code == 0, output
    assert "marker column Inf2" in output  # the table's own spelling


def test_every_unreachable_or_refused_connection_is_reported_without_secrets(kafka_bootstrap, sandbox_server,
                                                                             sqlite_company_db, tmp_path, capsys):
    broken_odbc = f"Driver=SQLite3;Database={tmp_path}/no-such-dir/F0002.db"
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db, 2: broken_odbc},
                             {1: "not-a-client-of-the-sandbox", 2: "another-unknown-client"})
    data["kafka"]["bootstrap_servers"] = "127.0.0.1:1"
    code, output = check(capsys, settings_file(tmp_path, data))
    assert code == 1
    assert "FAIL  kafka: no bootstrap server answers" in output
    assert "FAIL  visma company 2: cannot connect over ODBC" in output
    assert "FAIL  poweroffice client client-1: signing in failed" in output
    assert "client_key" in output  # the fix names the setting to look at
    assert "FAIL  poweroffice client client-2: signing in failed" in output
    assert "OK    visma company 1" in output
    assert "4 problem(s)" in output
    assert not [s for s in secrets_of(data) if s in output]


def test_invalid_settings_are_listed_without_their_values(kafka_bootstrap, sandbox_server, sqlite_company_db,
                                                          tmp_path, capsys):
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db}, {1: SANDBOX_CLIENT_KEY})
    del data["lookback_date"]
    data["companies"][0]["company_no"] = "first"
    data["admin"]["users"] = [{"name": "eve", "groups": ["no-such-group"]}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    code, output = check(capsys, path)
    assert code == 1
    assert "lookback_date: Field required" in output and "companies.0.company_no" in output
    assert "unknown group" in output
    assert not [s for s in secrets_of(data) if s in output]
