"""Changing the integration settings: what may change, how changes sit on the file's values,
what they mean for the running integration. Pure functions."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from vb2po.integration_settings import (
    ChangeRefused,
    Overrides,
    apply_overrides,
    apply_what_fits,
    parse_assignment,
    plan_change,
)
from vb2po.settings import Settings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def settings(**extra) -> Settings:
    data = dict(
        lookback_date="2026-01-01",
        companies=[{"company_no": 1, "odbc": "Driver=SQLite3;Database=/x/F0001.db;PWD=odbc-secret-1"},
                   {"company_no": 2, "odbc": "Driver=SQLite3;Database=/x/F0002.db;PWD=odbc-secret-2"}],
        invoice_clients=[{"name": "hovedkontor", "client_key": "client-key-secret", "company_no": 1},
                         {"name": "filial", "client_key": "client-key-secret-2"}],
    )
    data.update(extra)
    return Settings(**data)


def change(base: Settings, current: Overrides = Overrides(), *, reset=(), **values):
    return plan_change(base, current, set_values={k.replace("__", "."): v for k, v in values.items()},
                       reset=list(reset), actor="kari", now=NOW)


def test_a_change_sits_on_top_of_the_file_and_keeps_every_secret_untouched():
    base = settings()
    made = change(base, marker__field="Gr5", lookback_date="2026-03-01")
    assert made.overrides.version == 1 and made.overrides.changed_by == "kari"
    assert made.overrides.values == {"marker.field": "Gr5", "lookback_date": "2026-03-01"}
    effective = apply_overrides(base, made.overrides).settings
    assert (effective.marker.field, effective.lookback_date) == ("Gr5", date(2026, 3, 1))
    assert effective.companies[0].odbc.get_secret_value().endswith("PWD=odbc-secret-1")
    assert effective.client("hovedkontor").client_key.get_secret_value() == "client-key-secret"
    assert b"secret" not in made.overrides.encode()  # the record carries no secret
    assert [(d.path, d.before, d.after) for d in made.differences] == [
        ("lookback_date", "2026-01-01", "2026-03-01"), ("marker.field", "Gr4", "Gr5")]


def test_an_invoice_client_can_move_to_another_company_and_bank_account():
    base = settings()
    made = change(base, **{"invoice_clients__hovedkontor__company_no": 2, "invoice_clients__hovedkontor__bank_account": "1921"})
    client = made.settings.client("hovedkontor")
    assert (made.settings.company_of(client), client.bank_account) == (2, 1921)  # parsed to the field's type
    assert made.overrides.values["invoice_clients.hovedkontor.bank_account"] == 1921


@pytest.mark.parametrize("path, value, message", [
    ("kafka.bootstrap_servers", "elsewhere:9092", "cannot be changed through the admin API"),
    ("companies", [], "cannot be changed through the admin API"),
    ("invoice_clients.hovedkontor.client_key", "stolen", "cannot be changed here"),
    ("invoice_clients.nobody.bank_account", 1920, "no invoice client 'nobody'"),
    ("invoice_clients.hovedkontor.company_no", 7, "no entry under companies"),
    ("lookback_date", "not a date", "lookback_date"),
    ("marker.value", [1, 2], "marker.value"),
])
def test_what_cannot_be_changed_is_refused_with_the_reason(path, value, message):
    with pytest.raises(ChangeRefused) as refused:
        plan_change(settings(), Overrides(), set_values={path: value}, reset=[], actor="kari", now=NOW)
    assert message in str(refused.value)


def test_setting_the_files_value_or_resetting_removes_the_override():
    base = settings()
    first = change(base, marker__field="Gr5", credit_block_sync=False)
    back = change(base, first.overrides, marker__field="Gr4")
    assert back.overrides.values == {"credit_block_sync": False} and back.overrides.version == 2
    reset = change(base, back.overrides, reset=["credit_block_sync"])
    assert reset.overrides.values == {} and reset.settings.credit_block_sync is True
    assert [(d.path, d.before, d.after) for d in reset.differences] == [("credit_block_sync", False, True)]


def test_each_change_says_what_it_means_for_the_running_integration():
    base = settings()
    notes = " ".join(change(base, marker__field="Gr5", lookback_date="2025-06-01", integration_enabled=False,
                            credit_block_sync=False).notes)
    assert "no second voucher" in notes
    assert "sweep runs now and publishes the unmarked payments dated from then" in notes
    assert "producer stops reading Visma" in notes
    assert "customers blocked now stay blocked" in notes


def test_an_override_that_no_longer_fits_the_file_is_left_out_with_the_reason():
    base = settings()
    made = change(base, **{"invoice_clients__filial__bank_account": 1930}, credit_block_sync=False,
                  **{"invoice_clients__hovedkontor__company_no": 2})
    # The file changes: company 2 and the client "filial" are gone.
    smaller = Settings(lookback_date="2026-01-01", companies=[base.companies[0].model_dump()],
                       invoice_clients=[base.invoice_clients[0].model_dump()])
    with pytest.raises(ChangeRefused):
        apply_overrides(smaller, made.overrides)
    applied = apply_what_fits(smaller, made.overrides)
    assert applied.settings.credit_block_sync is False  # what still fits is applied
    assert applied.settings.company_of(applied.settings.client("hovedkontor")) == 1
    assert any(s.startswith("invoice_clients.filial.bank_account: no invoice client") for s in applied.stale)
    assert any(s.startswith("invoice_clients.hovedkontor.company_no: ") for s in applied.stale)


def test_a_change_is_still_possible_while_an_old_override_no_longer_fits_and_drops_it():
    base = settings()
    made = change(base, **{"invoice_clients__filial__bank_account": 1930})
    smaller = Settings(lookback_date="2026-01-01", companies=[c.model_dump() for c in base.companies],
                       invoice_clients=[base.invoice_clients[0].model_dump()])
    later = change(smaller, made.overrides, credit_block_sync=False)
    assert later.overrides.values == {"credit_block_sync": False}
    assert any("removed the override of invoice_clients.filial.bank_account" in n for n in later.notes)
    # ... and it can be reset by its path, although that client is gone
    reset = change(smaller, made.overrides, reset=["invoice_clients.filial.bank_account"])
    assert reset.overrides.values == {} and reset.overrides.version == made.overrides.version + 1


def test_overrides_survive_their_record_encoding():
    made = change(settings(), payment_rule__voucher_types=[3, 4])
    assert Overrides.decode(made.overrides.encode()) == made.overrides
    assert made.settings.payment_rule.voucher_types == (3, 4)


@pytest.mark.parametrize("text, expected", [
    ("marker.field=Gr5", ("marker.field", "Gr5")),
    ("credit_block_sync=false", ("credit_block_sync", False)),
    ("lookback_date=2026-03-01", ("lookback_date", "2026-03-01")),
    ("payment_rule.voucher_types=[3, 4]", ("payment_rule.voucher_types", [3, 4])),
    ("invoice_clients.filial.company_no=null", ("invoice_clients.filial.company_no", None)),
    ("marker.value=1", ("marker.value", 1)),
])
def test_command_line_assignments_are_read_as_yaml_values(text, expected):
    assert parse_assignment(text) == expected


def test_an_assignment_without_a_value_is_refused():
    with pytest.raises(ChangeRefused):
        parse_assignment("marker.field")
