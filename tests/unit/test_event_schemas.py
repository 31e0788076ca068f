"""Event contracts: the committed JSON Schemas hold, and a change that breaks readers fails."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.compat import breaking_changes
from schemas.export import SCHEMA_DIR, current_schemas, render


@pytest.mark.parametrize("path", sorted(current_schemas()), ids=lambda p: p.name)
def test_models_do_not_break_the_committed_schema(path):
    committed = json.loads(path.read_text())
    assert breaking_changes(committed, current_schemas()[path]) == []


def test_committed_schema_files_are_up_to_date():
    for path, schema in current_schemas().items():
        assert path.exists(), f"{path.name} missing: run python -m schemas.export"
        assert path.read_text() == render(schema), f"{path.name} is stale: run python -m schemas.export"
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} >= {p.name for p in current_schemas()}


@pytest.fixture
def payment_schema():
    return json.loads((SCHEMA_DIR / "visma.payment.received.v1.json").read_text())


def test_removing_a_field_is_breaking(payment_schema):
    new = copy.deepcopy(payment_schema)
    del new["$defs"]["PaymentPayload"]["properties"]["text"]
    assert breaking_changes(payment_schema, new) == ["$.payload.text: field removed or renamed"]


def test_renaming_a_field_is_breaking(payment_schema):
    new = copy.deepcopy(payment_schema)
    props = new["$defs"]["PaymentPayload"]["properties"]
    props["amount_nok"] = props.pop("amount")
    required = new["$defs"]["PaymentPayload"]["required"]
    new["$defs"]["PaymentPayload"]["required"] = [("amount_nok" if r == "amount" else r) for r in required]
    problems = breaking_changes(payment_schema, new)
    assert "$.payload.amount: field removed or renamed" in problems
    assert "$.payload.amount_nok: required field added" in problems


def test_narrowing_a_type_is_breaking(payment_schema):
    new = copy.deepcopy(payment_schema)
    new["$defs"]["PaymentPayload"]["properties"]["invoice_no"]["type"] = "integer"
    new["$defs"]["PaymentPayload"]["properties"]["invoice_no"].pop("maxLength")
    assert breaking_changes(payment_schema, new) == ["$.payload.invoice_no: type narrowed from ['string'] to ['integer']"]


def test_tightening_a_length_is_breaking(payment_schema):
    new = copy.deepcopy(payment_schema)
    new["$defs"]["PaymentPayload"]["properties"]["invoice_no"]["maxLength"] = 10
    assert breaking_changes(payment_schema, new) == ["$.payload.invoice_no: maxLength tightened to 10"]


def test_adding_a_required_field_is_breaking_and_an_optional_one_is_not(payment_schema):
    optional = copy.deepcopy(payment_schema)
    optional["$defs"]["PaymentPayload"]["properties"]["due_date"] = {"type": "string", "format": "date"}
    assert breaking_changes(payment_schema, optional) == []
    required = copy.deepcopy(optional)
    required["$defs"]["PaymentPayload"]["required"].append("due_date")
    assert breaking_changes(payment_schema, required) == ["$.payload.due_date: required field added"]


def test_widening_a_type_is_compatible(payment_schema):
    new = copy.deepcopy(payment_schema)
    node = new["$defs"]["PaymentPayload"]["properties"]["voucher_no"]
    new["$defs"]["PaymentPayload"]["properties"]["voucher_no"] = {"anyOf": [node, {"type": "null"}]}
    assert breaking_changes(payment_schema, new) == []


@given(st.integers(1, 9999), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
def test_the_quick_event_id_check_is_uuid5(company_no, jno, entno):
    from schemas.events import _uuid5_bytes, payment_event_id

    assert _uuid5_bytes(f"payment/{company_no}/{jno}/{entno}") == payment_event_id(company_no, jno, entno).bytes
