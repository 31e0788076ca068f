"""No secret from the settings gets past the redactor. Pure."""
from __future__ import annotations

import json

from admin.actions.redact import Redactor, settings_for_display
from vb2po.settings import Settings

SETTINGS = Settings(
    lookback_date="2026-01-01",
    companies=[{"company_no": 1, "odbc": "Driver={ODBC Driver 18 for SQL Server};Server=s;UID=vb2po;PWD=Sup3r-odbc;"}],
    invoice_clients=[{"name": "hovedkontor", "client_key": "ck-1234-5678"}],
    poweroffice={"application_key": "app-key-9876", "subscription_key": "sub-key-5432"},
    kafka={"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "kafka-pass-11"},
)
SECRETS = ["Sup3r-odbc", "ck-1234-5678", "app-key-9876", "sub-key-5432", "kafka-pass-11", "Server=s;UID=vb2po"]


def test_every_secret_is_masked_in_text_and_in_nested_data():
    redactor = Redactor.from_settings(SETTINGS)
    leaked = f"login failed for PWD=Sup3r-odbc with key ck-1234-5678; token vb2po_0123456789ab_{'A' * 43}"
    text = json.dumps(redactor.data({"error": leaked, "list": [leaked], "n": 5}))
    assert not [s for s in SECRETS if s in text] and "vb2po_0123456789ab" not in text


def test_the_settings_shown_to_an_operator_hold_no_secret_but_everything_else():
    shown = json.dumps(settings_for_display(SETTINGS))
    assert not [s for s in SECRETS if s in shown]
    assert "hovedkontor" in shown and "Gr4" in shown
