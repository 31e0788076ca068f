"""The applied-payments log: what the consumer writes once a payment is applied and marked,
and how the console counts it (today, this week, each event once)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from admin.actions.applied import MemoryApplied, tally, week_start
from consumer.applied_log import AppliedPayment, FakeAppliedLog
from consumer.outcomes import ALREADY_MARKED, APPLIED
from consumer.payments import PaymentApplier, external_import_reference
from consumer.routing import Route
from consumer.visma import FakeVismaPayments
from devstack.dataset import DatasetSpec, payment_rows
from tests.fakes.poweroffice import FakePowerOffice
from tests.unit.test_payment_applier import BOOK, NOW, READER, RULE, visma_row
from vb2po.errors import TransientError
from vb2po.settings import InvoiceClientSettings

OSLO = ZoneInfo("Europe/Oslo")
SPEC = DatasetSpec(size=30, seed=5)


@pytest.fixture
def recorded():
    return FakeAppliedLog()


@pytest.fixture
def applier(recorded):
    rows = [visma_row(r) for r in payment_rows(SPEC)]
    po, visma = FakePowerOffice.seeded(SPEC), FakeVismaPayments(rows, RULE, BOOK)
    route = Route(1, InvoiceClientSettings(name="hovedkontor", client_key="k", bank_account=1920))
    return PaymentApplier({1: route}, {1: po}, {1: visma}, applied=recorded, now=lambda: NOW, zone=OSLO), visma, rows


def test_an_applied_payment_is_recorded_once_after_its_marker_with_every_field(recorded, applier):
    applier, markers, rows = applier
    event = READER.event(rows[0], NOW)
    assert applier.apply(event) == APPLIED
    assert applier.apply(event) == ALREADY_MARKED  # a replay records nothing more
    [payment] = recorded.records
    p = event.payload
    assert (payment.event_id, payment.company_no, payment.client, payment.customer_no, payment.invoice_no) == (
        str(event.event_id), 1, "hovedkontor", p.customer_no, p.invoice_no)
    assert (payment.amount, payment.currency) == (p.amount, p.currency)
    assert payment.reference == external_import_reference(1, p.jno, p.entno)
    assert payment.applied_at.tzinfo is not None and markers.writes == 1


def test_nothing_is_recorded_when_the_marker_could_not_be_written(recorded, applier):
    applier, markers, rows = applier
    event = READER.event(rows[0], NOW)
    markers.mark = lambda keys: (_ for _ in ()).throw(TransientError("db gone", reason="db_unavailable"))
    with pytest.raises(TransientError):
        applier.apply(event)
    assert recorded.records == []


def test_a_record_travels_as_json_with_the_amount_as_text():
    at = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)
    payment = AppliedPayment("e-1", 1, "hovedkontor", 10017, "4411", Decimal("1234.50"), "NOK", at, "VB2PO-F0001-J1-E1")
    raw = payment.encode()
    assert b'"amount": "1234.50"' in raw and b'"applied_at": "2026-11-30T09:15:00+00:00"' in raw
    assert AppliedPayment.decode(raw) == payment


def _paid(event_id: str, client: str, at: datetime, amount: str = "100.00") -> AppliedPayment:
    return AppliedPayment(event_id, 1, client, 1, "1", Decimal(amount), "NOK", at, "ref")


def test_today_and_this_week_are_days_in_oslo_and_each_event_counts_once():
    now = datetime(2026, 12, 2, 22, 30, tzinfo=timezone.utc)  # Wednesday 23:30 in Oslo
    assert week_start(now, OSLO) == datetime(2026, 11, 30, tzinfo=OSLO)
    payments = [
        _paid("a", "hk", datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc), "1234.50"),  # today 23:00 Oslo
        _paid("a", "hk", datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc), "1234.50"),  # written twice
        _paid("b", "hk", datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)),  # Tuesday
        _paid("c", "hk", datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)),  # Monday 00:30 Oslo: this week
        _paid("d", "hk", datetime(2026, 11, 29, 22, 30, tzinfo=timezone.utc)),  # Sunday 23:30 Oslo: last week
        _paid("e", "other", datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)),
    ]
    counted = tally(payments, now, OSLO)
    assert counted["hk"]["today"].as_dict() == {"count": 1, "amounts": {"NOK": "1234.50"}}
    assert counted["hk"]["week"].as_dict() == {"count": 3, "amounts": {"NOK": "1434.50"}}
    assert counted["other"]["today"].count == 1
    assert MemoryApplied(OSLO, payments).totals(now + timedelta(days=7)).get("hk") is None  # a new week
