"""Applying payments with the in-memory PowerOffice and marker fakes: exactly once, whatever repeats."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from consumer.markers import FakeMarkerStore
from consumer.payments import ALREADY_APPLIED, ALREADY_MARKED, APPLIED, PaymentApplier, external_import_reference
from consumer.routing import Route, routes_by_company
from devstack.dataset import DatasetSpec, invoices, payment_rows
from producer.rows import PaymentRow, payment_event
from vb2po.errors import TerminalError, TransientError
from tests.fakes.poweroffice import FakePowerOffice
from vb2po.settings import InvoiceClientSettings
from zoneinfo import ZoneInfo

SPEC = DatasetSpec(size=60, seed=3)
NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def events_for(rows):
    out = []
    for r in rows:
        row = PaymentRow(r.jno, r.entno, r.cust_no, r.vo_no, r.vo_dt, r.vo_tp, r.txt, r.am, r.invo_no, r.ch_dt, r.ch_tmms)
        out.append(payment_event(row, company_no=1, currency="NOK", time_column="ChTmms", zone=ZoneInfo("Europe/Oslo"), now=NOW))
    return out


@pytest.fixture
def world():
    po = FakePowerOffice.seeded(SPEC)
    markers = FakeMarkerStore()
    route = Route(1, InvoiceClientSettings(name="demo", client_key="k", bank_account=1920))
    return po, markers, PaymentApplier({1: route}, {1: po}, {1: markers}, now=lambda: NOW)


def balances(po):
    return {i.invoice_no: i.balance for i in po.get_invoices([i.invoice_no for i in invoices(SPEC)])}


def test_each_payment_lowers_its_invoice_balance_once_even_when_replayed(world):
    po, markers, applier = world
    events = events_for(payment_rows(SPEC))
    assert [applier.apply(e) for e in events] == [APPLIED] * len(events)
    assert [applier.apply(e) for e in events] == [ALREADY_MARKED] * len(events)
    expected = {i.invoice_no: i.outstanding for i in invoices(SPEC)}
    assert balances(po) == expected
    assert len(po.ledger.vouchers()) == len(events)


def test_crash_after_posting_before_marking_ends_with_one_voucher_and_one_marker(world):
    po, markers, applier = world
    event = events_for(payment_rows(SPEC))[0]
    original_mark = markers.mark
    markers.mark = lambda jno, entno: (_ for _ in ()).throw(TransientError("db gone", reason="db_unavailable"))
    with pytest.raises(TransientError):
        applier.apply(event)
    markers.mark = original_mark
    assert applier.apply(event) == ALREADY_APPLIED  # PowerOffice refused the duplicate reference
    assert markers.writes == 1
    ref = external_import_reference(1, event.payload.jno, event.payload.entno)
    assert [v.draft.external_import_reference for v in po.ledger.vouchers()] == [ref]


def test_no_lookup_per_payment_on_the_happy_path(world):
    po, markers, applier = world
    events = events_for(payment_rows(SPEC))
    po.prefetch_customers({e.payload.customer_no for e in events})
    before = sum(po.calls.values())
    for e in events:
        applier.apply(e)
    assert po.calls["post_payment"] == len(events)
    assert sum(po.calls.values()) - before - len(events) <= 1  # at most the one bank-account lookup


def test_posting_before_the_lock_date_is_terminal(world):
    po, markers, applier = world
    po.ledger.set_lock_date(date(2026, 12, 31))
    with pytest.raises(TerminalError) as err:
        applier.apply(events_for(payment_rows(SPEC))[0])
    assert err.value.reason == "lock_date"
    assert markers.writes == 0


def test_an_event_of_a_company_without_invoice_client_is_terminal(world):
    po, markers, _ = world
    applier = PaymentApplier({}, {}, {})
    with pytest.raises(TerminalError) as err:
        applier.apply(events_for(payment_rows(SPEC))[0])
    assert err.value.reason == "unknown_invoice_client"


def test_reference_fits_poweroffice_limit_for_the_largest_keys():
    assert len(external_import_reference(9999, 2**31 - 1, 2**31 - 1)) <= 50


def test_two_invoice_clients_on_one_company_are_refused_with_a_clear_message():
    class S:
        invoice_clients = (InvoiceClientSettings(name="a", client_key="1"), InvoiceClientSettings(name="b", client_key="2"))

        def company_of(self, client):
            return 1

    with pytest.raises(ValueError, match="both map to Visma company 1"):
        routes_by_company(S())
