"""Applying payments with the in-memory PowerOffice and Visma fakes: exactly once whatever repeats,
nothing posted that Visma does not hold or PowerOffice cannot match, currencies, reversals."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from consumer.outcomes import ALREADY_APPLIED, ALREADY_MARKED, ANNULLED, APPLIED
from consumer.payments import ON_ACCOUNT, PaymentApplier, external_import_reference
from consumer.routing import Route, routes_by_company
from consumer.visma import FakeVismaPayments
from devstack.dataset import DatasetSpec, customers, invoices, payment_rows
from devstack.visma_seed import payment_row
from producer.rows import RowReader
from tests.fakes.poweroffice import FakePowerOffice
from vb2po.errors import TerminalError, TransientError
from vb2po.settings import InvoiceClientSettings
from vb2po.visma.payments import CurrencyBook, PaymentRow, PaymentRule

SPEC = DatasetSpec(size=60, seed=3)
NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
OSLO = ZoneInfo("Europe/Oslo")
RULE = PaymentRule((3,), (3,), date(2025, 1, 1))
BOOK = CurrencyBook("NOK", {}, {2: "EUR"})
READER = RowReader(1, RULE, BOOK, "ChTmms", OSLO)


def visma_row(r, **changes) -> PaymentRow:
    return replace(payment_row(r), **changes)


class World:
    def __init__(self, rows, unmatched="dead_letter"):
        self.po = FakePowerOffice.seeded(SPEC)
        self.visma = FakeVismaPayments(rows, RULE, BOOK)
        route = Route(1, InvoiceClientSettings(name="demo", client_key="k", bank_account=1920))
        self.applier = PaymentApplier({1: route}, {1: self.po}, {1: self.visma}, unmatched=unmatched, now=lambda: NOW,
                                      zone=OSLO)

    def apply(self, row: PaymentRow, event_row: PaymentRow | None = None):
        return self.applier.apply(READER.event(event_row or row, NOW))

    def balance(self, invoice_no: int) -> Decimal:
        return self.po.get_invoices([invoice_no])[0].balance


def rows():
    return [visma_row(r) for r in payment_rows(SPEC)]


def test_each_payment_lowers_its_invoice_balance_once_even_when_replayed():
    payments = rows()
    world = World(payments)
    assert [world.apply(r) for r in payments] == [APPLIED] * len(payments)
    assert [world.apply(r) for r in payments] == [ALREADY_MARKED] * len(payments)
    expected = {i.invoice_no: i.outstanding for i in invoices(SPEC)}
    assert {n: world.balance(n) for n in expected} == expected
    assert len(world.po.ledger.vouchers()) == len(payments)
    assert world.visma.marked == {(int(r.jno), int(r.entno)) for r in payments}


def test_crash_after_posting_before_marking_ends_with_one_voucher_and_one_marker():
    payment = rows()[0]
    world = World([payment])
    real_mark = world.visma.mark
    world.visma.mark = lambda keys: (_ for _ in ()).throw(TransientError("db gone", reason="db_unavailable"))
    with pytest.raises(TransientError):
        world.apply(payment)
    world.visma.mark = real_mark
    assert world.apply(payment) == ALREADY_APPLIED  # this fake PowerOffice refuses the duplicate reference
    assert world.visma.writes == 1
    ref = external_import_reference(1, int(payment.jno), int(payment.entno))
    assert [v.draft.external_import_reference for v in world.po.ledger.vouchers()] == [ref]


def test_a_payment_visma_does_not_hold_is_not_posted():
    payment = rows()[0]
    world = World([])
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "not_in_visma" and "holds no row" in str(err.value)
    assert world.po.ledger.vouchers() == []


@pytest.mark.parametrize("change, field", [
    ({"am": Decimal("-99999.00")}, "amount"), ({"cust_no": 1}, "customer"), ({"invo_no": "100099"}, "invoice"),
])
def test_an_event_that_differs_from_the_visma_row_is_not_posted(change, field):
    payment = rows()[0]
    change = {k: (payment.cust_no + v if k == "cust_no" else v) for k, v in change.items()}
    world = World([payment])
    with pytest.raises(TerminalError) as err:
        world.apply(payment, event_row=replace(payment, **change))
    assert err.value.reason == "differs_from_visma" and field in str(err.value)
    assert world.po.ledger.vouchers() == [] and world.visma.marked == set()


def test_a_replay_that_says_something_else_than_the_marked_row_is_dead_lettered():
    payment = rows()[0]
    world = World([payment])
    assert world.apply(payment) == APPLIED
    assert world.apply(payment) == ALREADY_MARKED  # the same event again: nothing to do
    with pytest.raises(TerminalError) as err:
        world.apply(payment, event_row=replace(payment, am=Decimal("-1.00")))
    assert err.value.reason == "differs_from_visma" and len(world.po.ledger.vouchers()) == 1


def test_a_row_that_is_no_payment_any_more_is_not_posted():
    payment = rows()[0]
    world = World([replace(payment, vo_tp=1)])  # re-typed as an invoice row in Visma since
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "differs_from_visma" and "not a payment" in str(err.value)


def test_an_unknown_invoice_is_dead_lettered_or_posted_on_account():
    payment = replace(rows()[0], invo_no="14999")
    world = World([payment])
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "invoice_unknown" and "invoice 14999 is unknown in PowerOffice client demo" in str(err.value)
    assert world.po.ledger.vouchers() == []

    on_account = World([payment], unmatched=ON_ACCOUNT)
    assert on_account.apply(payment) == APPLIED
    (voucher,) = on_account.po.ledger.vouchers()
    assert [line.invoice_no for line in voucher.draft.lines] == [None, None]
    assert on_account.visma.marked == {(int(payment.jno), int(payment.entno))}


def test_another_customers_invoice_is_refused():
    payment = rows()[0]
    other = next(c.cust_no for c in customers(SPEC) if c.cust_no != payment.cust_no)
    world = World([replace(payment, cust_no=other)])
    with pytest.raises(TerminalError) as err:
        world.apply(replace(payment, cust_no=other))
    assert err.value.reason == "invoice_of_another_customer"
    assert world.po.ledger.vouchers() == []


def test_a_reversed_invoice_is_refused():
    payment = rows()[0]
    world = World([payment])
    world.po.ledger.reverse_invoice(int(payment.invo_no))
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "invoice_reversed"


def test_a_eur_payment_is_posted_in_eur_with_the_company_amount_as_rate():
    payment = rows()[0]
    customer = int(payment.cust_no)
    world = World([])
    world.po.ledger.add_new_invoice(500001, customer, Decimal("100.00"), currency_code="EUR",
                                    exchange_rate=Decimal("11.5"), voucher_date=date(2026, 3, 1))
    eur = replace(payment, invo_no="500001", cur=2, cur_am=Decimal("-100.00"), am=Decimal("-1150.00"))
    world.visma.rows[(int(eur.jno), int(eur.entno))] = eur
    assert world.apply(eur) == APPLIED
    (voucher,) = world.po.ledger.vouchers()
    assert voucher.draft.currency_code == "EUR"
    assert [line.currency_amount for line in voucher.draft.lines] == [Decimal("100.00"), Decimal("-100.00")]
    assert {line.exchange_rate for line in voucher.draft.lines} == {Decimal("11.5")}
    assert world.balance(500001) == 0


def test_a_eur_payment_on_a_nok_invoice_is_refused():
    payment = rows()[0]
    eur = replace(payment, cur=2, cur_am=Decimal("-10.00"))
    world = World([eur])
    with pytest.raises(TerminalError) as err:
        world.apply(eur)
    assert err.value.reason == "currency_mismatch" and "in NOK" in str(err.value)
    assert world.po.ledger.vouchers() == []


def test_a_reversal_of_a_registered_payment_is_its_own_voucher_and_restores_the_balance():
    payment = rows()[0]
    invoice = int(payment.invo_no)
    reversal = replace(payment, entno=int(payment.entno) + 1000, am=-payment.am)
    world = World([payment, reversal])
    before = world.balance(invoice)
    assert world.apply(payment) == APPLIED
    assert world.apply(reversal) == APPLIED
    refs = [v.draft.external_import_reference for v in world.po.ledger.vouchers()]
    assert refs == [external_import_reference(1, int(payment.jno), int(payment.entno)),
                    external_import_reference(1, int(reversal.jno), int(reversal.entno))]
    assert world.balance(invoice) == before


def test_a_reversal_of_an_unregistered_payment_marks_both_and_posts_nothing():
    payment = rows()[0]
    reversal = replace(payment, entno=int(payment.entno) + 1000, am=-payment.am)
    world = World([payment, reversal])
    assert world.apply(reversal) == ANNULLED
    assert world.po.ledger.vouchers() == []
    assert world.apply(payment) == ALREADY_MARKED


def test_a_reversal_without_its_payment_is_dead_lettered():
    payment = rows()[0]
    reversal = replace(payment, entno=int(payment.entno) + 1000, am=-payment.am)
    world = World([reversal])
    with pytest.raises(TerminalError) as err:
        world.apply(reversal)
    assert err.value.reason == "reversal_without_payment"


def test_a_row_deleted_between_posting_and_marking_is_an_error_not_applied():
    payment = rows()[0]
    world = World([payment])
    real_mark = world.visma.mark

    def vanish(keys):
        world.visma.rows.clear()
        return real_mark(keys)
    world.visma.mark = vanish
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "marker_not_written" and "no longer exist" in str(err.value)


def test_posting_before_the_lock_date_is_terminal():
    payment = rows()[0]
    world = World([payment])
    world.po.ledger.set_lock_date(date(2026, 12, 31))
    with pytest.raises(TerminalError) as err:
        world.apply(payment)
    assert err.value.reason == "lock_date"
    assert world.visma.writes == 0


def test_an_event_of_a_company_without_invoice_client_is_terminal():
    applier = PaymentApplier({}, {}, {})
    with pytest.raises(TerminalError) as err:
        applier.apply(READER.event(rows()[0], NOW))
    assert err.value.reason == "unknown_invoice_client"


def test_reference_fits_poweroffice_limit_for_the_largest_keys():
    assert len(external_import_reference(9999, -(2**31), -(2**31))) <= 50


def test_two_invoice_clients_on_one_company_are_refused_with_a_clear_message():
    class S:
        invoice_clients = (InvoiceClientSettings(name="a", client_key="1"), InvoiceClientSettings(name="b", client_key="2"))

        def company_of(self, client):
            return 1

    with pytest.raises(ValueError, match="both map to Visma company 1"):
        routes_by_company(S())
