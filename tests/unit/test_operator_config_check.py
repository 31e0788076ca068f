"""`vb2po config check`'s judgement of the marker column type and of invalid settings. Pure."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin.actions.config_check import marker_type_problem, settings_errors
from vb2po.settings import Settings


@pytest.mark.parametrize("value, data_type, type_name, size, digits", [
    (1, 4, "INTEGER", 9, 0),  # SQLite / SQL Server int
    (1, 4, "int4", 10, 0),  # PostgreSQL
    (1, 5, "smallint", 5, 0),
    (1, 2, "numeric(9,0)", 9, 0),
    (1, 12, "VARCHAR(60)", 60, 0),  # a text free field takes "1"
    ("X", -9, "nvarchar", 60, 0),
])
def test_columns_that_hold_the_marker_value_unchanged_are_usable(value, data_type, type_name, size, digits):
    assert marker_type_problem(value, data_type, type_name, size, digits) is None


@pytest.mark.parametrize("value, data_type, type_name, size, digits, why", [
    ("X", 4, "INTEGER", 9, 0, "integer column"),
    (1, 12, "DECIMAL(28,6)", 6, 10, "decimals"),  # SQLite's driver reports DECIMAL as VARCHAR
    ("processed", 12, "VARCHAR(4)", 4, 0, "4 characters"),
    (1, 93, "datetime", 23, 3, "type datetime"),
    (1, 6, "float", 53, 0, "type float"),
])
def test_columns_that_cannot_hold_the_marker_value_are_refused_with_the_reason(value, data_type, type_name, size,
                                                                                digits, why):
    assert why in (marker_type_problem(value, data_type, type_name, size, digits) or "")


def test_invalid_settings_are_explained_without_quoting_values():
    with pytest.raises(ValidationError) as exc:
        Settings(lookback_date="2026-01-01", companies=[{"company_no": 1, "odbc": "PWD=hunter22", "dialect": 5}],
                 invoice_clients=[{"name": "a", "client_key": "ck-secret-value", "company_no": "x"}])
    text = "\n".join(f.message for f in settings_errors(exc.value))
    assert "companies.0.dialect" in text and "invoice_clients.0.company_no" in text
    assert "hunter22" not in text and "ck-secret-value" not in text


def test_kafka_clients_get_sasl_and_tls_settings_only_when_set():
    from vb2po.kafka.clients import _common
    from vb2po.settings import KafkaSettings

    plain = _common(KafkaSettings(bootstrap_servers="a:9092,b:9092"))
    assert plain == {"bootstrap_servers": ["a:9092", "b:9092"], "security_protocol": "PLAINTEXT"}
    secured = _common(KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                                    sasl_password="pw", ssl_cafile="/etc/ca.pem"))
    assert secured["sasl_plain_password"] == "pw" and secured["ssl_cafile"] == "/etc/ca.pem"
    assert secured["sasl_mechanism"] == "SCRAM-SHA-512" and secured["security_protocol"] == "SASL_SSL"
