"""Exactly once against a PowerOffice that accepts a second voucher with the same reference: after
every outcome vb2po cannot trust, the reference is looked up before anything is posted again, and
two attempts at one payment cannot both post (consumer.intents)."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from consumer.intents import Intent, MemoryIntentStore
from consumer.outcomes import ALREADY_APPLIED, ALREADY_MARKED, APPLIED
from consumer.payments import INTENT_CONFLICT, INTENT_SETTLING, PaymentApplier, external_import_reference
from consumer.routing import Route
from consumer.visma import FakeVismaPayments
from devstack.dataset import DatasetSpec, invoices, payment_rows
from devstack.visma_seed import payment_row
from producer.rows import RowReader
from tests.fakes.poweroffice import FakePowerOffice
from vb2po.errors import TerminalError, TransientError
from vb2po.poweroffice.errors import classify, classify_problem
from vb2po.settings import InvoiceClientSettings
from vb2po.visma.payments import CurrencyBook, PaymentRow, PaymentRule

SPEC = DatasetSpec(size=40, seed=5)
START = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
OSLO = ZoneInfo("Europe/Oslo")
RULE = PaymentRule((3,), (3,), date(2025, 1, 1))
BOOK = CurrencyBook("NOK", {}, {})
READER = RowReader(1, RULE, BOOK, "ChTmms", OSLO)
SETTLE_S = 15.0


def lost_connection() -> Exception:
    return classify(requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"))


def timed_out() -> Exception:
    return classify(requests.exceptions.ReadTimeout("read timed out"))


def server_error() -> Exception:
    return TransientError("PowerOffice answered 503", reason="http_503")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    """One PowerOffice client that does not enforce unique references, one Visma company, one
    intent log, and as many consumer processes as a test asks for."""

    def __init__(self, rows: list[PaymentRow]):
        self.po = FakePowerOffice.seeded(SPEC)
        self.po.ledger.unique_references = False
        self.visma = FakeVismaPayments(rows, RULE, BOOK)
        self.intents = MemoryIntentStore()
        self.clock = Clock()
        self.route = Route(1, InvoiceClientSettings(name="demo", client_key="k", bank_account=1920))

    def consumer(self, owner: str) -> PaymentApplier:
        return PaymentApplier({1: self.route}, {1: self.po}, {1: self.visma}, intents=self.intents, owner=owner,
                              settle_s=SETTLE_S, now=self.clock, zone=OSLO)

    def vouchers_of(self, row: PaymentRow) -> int:
        reference = external_import_reference(1, int(row.jno), int(row.entno))
        return sum(1 for v in self.po.ledger.vouchers() if v.draft.external_import_reference == reference)


def rows() -> list[PaymentRow]:
    return [payment_row(r) for r in payment_rows(SPEC)]


def event(row: PaymentRow):
    return READER.event(row, START)


def reason_of(excinfo) -> str:
    return excinfo.value.reason


def test_the_normal_path_costs_one_call_per_payment_and_no_look_up():
    payments = rows()
    world = World(payments)
    consumer = world.consumer("a")
    assert [consumer.apply(event(r)) for r in payments] == [APPLIED] * len(payments)
    assert world.po.calls["post_payment"] == len(payments)
    assert world.po.calls["ledger_entries"] == 0
    assert world.intents.intents == {}  # every claim cleared once its row was marked


@pytest.mark.parametrize("lost", [lost_connection, server_error], ids=["cut_response", "5xx_after_the_work"])
def test_an_answer_lost_after_the_voucher_was_booked_is_looked_up_not_posted_again(lost):
    payment = rows()[0]
    world = World([payment])
    consumer = world.consumer("a")
    world.po.lose_next_answer(lost(), method="post_payment")
    with pytest.raises(TransientError):
        consumer.apply(event(payment))
    assert consumer.apply(event(payment)) == ALREADY_APPLIED
    assert world.vouchers_of(payment) == 1
    assert (int(payment.jno), int(payment.entno)) in world.visma.marked
    assert world.po.calls["ledger_entries"] == 1


def test_a_5xx_before_the_work_is_looked_up_and_then_posted_once():
    payment = rows()[0]
    world = World([payment])
    consumer = world.consumer("a")
    world.po.fail_next(server_error(), method="post_payment")
    with pytest.raises(TransientError):
        consumer.apply(event(payment))
    assert consumer.apply(event(payment)) == APPLIED
    assert world.vouchers_of(payment) == 1
    assert world.po.calls["ledger_entries"] == 1


def test_after_a_timeout_the_look_up_waits_until_the_server_cannot_still_be_working_on_it():
    payment = rows()[0]
    world = World([payment])
    consumer = world.consumer("a")
    world.po.lose_next_answer(timed_out(), method="post_payment")
    with pytest.raises(TransientError):
        consumer.apply(event(payment))
    with pytest.raises(TransientError) as settling:
        consumer.apply(event(payment))
    assert reason_of(settling) == INTENT_SETTLING
    assert 0 < settling.value.retry_after <= SETTLE_S
    assert world.vouchers_of(payment) == 1 and world.po.calls["ledger_entries"] == 0
    world.clock.advance(SETTLE_S)
    assert consumer.apply(event(payment)) == ALREADY_APPLIED
    assert world.vouchers_of(payment) == 1


def test_a_consumer_that_died_between_posting_and_marking_is_noticed_by_the_next_one():
    payment = rows()[0]
    world = World([payment])
    dying, successor = world.consumer("dying"), world.consumer("successor")
    real_mark = world.visma.mark
    world.visma.mark = lambda keys: (_ for _ in ()).throw(RuntimeError("SIGKILL"))
    with pytest.raises(RuntimeError):
        dying.apply(event(payment))
    world.visma.mark = real_mark
    assert world.vouchers_of(payment) == 1
    world.clock.advance(3)  # the partition moves within seconds: the dead one's request may still be running
    with pytest.raises(TransientError) as settling:
        successor.apply(event(payment))
    assert reason_of(settling) == INTENT_SETTLING
    world.clock.advance(SETTLE_S)
    assert successor.apply(event(payment)) == ALREADY_APPLIED
    assert world.vouchers_of(payment) == 1
    assert (int(payment.jno), int(payment.entno)) in world.visma.marked


def test_a_consumer_that_died_before_its_request_left_gets_the_payment_posted_by_the_next_one():
    payment = rows()[0]
    world = World([payment])
    world.po.fail_next(RuntimeError("SIGKILL before the request was sent"), method="post_payment")
    with pytest.raises(RuntimeError):
        world.consumer("dying").apply(event(payment))
    world.clock.advance(SETTLE_S)
    assert world.consumer("successor").apply(event(payment)) == APPLIED
    assert world.vouchers_of(payment) == 1


def test_a_payment_finished_by_another_consumer_after_this_one_read_the_row_is_not_posted_again():
    payment = rows()[0]
    world = World([payment])
    slow, fast = world.consumer("slow"), world.consumer("fast")
    key = (int(payment.jno), int(payment.entno))
    stale = replace(world.visma.read([key])[key], intents_seen=world.intents.position())  # read, then delayed
    assert fast.apply(event(payment)) == APPLIED  # posted, marked, claim cleared meanwhile
    with pytest.raises(TransientError) as conflict:
        slow.apply(event(payment), stale)
    assert reason_of(conflict) == INTENT_CONFLICT
    assert slow.apply(event(payment)) == ALREADY_MARKED  # the retry reads the row again
    assert world.vouchers_of(payment) == 1


def test_two_consumers_racing_for_one_payment_cannot_both_post():
    payment = rows()[0]
    world = World([payment])
    mine = world.consumer("mine")
    reference = external_import_reference(1, int(payment.jno), int(payment.entno))
    # The other consumer claims the reference between this one's row read and its claim, and its
    # request is on its way (it reaches PowerOffice while this one waits).
    world.intents.interleave = [(reference, Intent("other", START.timestamp(), int(payment.cust_no), "2026-01-01"))]
    with pytest.raises(TransientError) as conflict:
        mine.apply(event(payment))
    assert reason_of(conflict) == INTENT_CONFLICT
    world.po.post_payment(_posting_like(mine, payment))  # the other consumer's request arrives
    with pytest.raises(TransientError) as settling:
        mine.apply(event(payment))
    assert reason_of(settling) == INTENT_SETTLING  # the claim it lost to is still young
    world.clock.advance(SETTLE_S)
    assert mine.apply(event(payment)) == ALREADY_APPLIED
    assert world.vouchers_of(payment) == 1


def test_a_voucher_refused_for_the_rate_limit_is_posted_again_without_a_look_up():
    payment = rows()[0]
    world = World([payment])
    consumer = world.consumer("a")
    world.po.fail_next(classify_problem(429, None, retry_after="1"), method="post_payment")
    with pytest.raises(TransientError):
        consumer.apply(event(payment))
    assert consumer.apply(event(payment)) == APPLIED
    assert world.po.calls["ledger_entries"] == 0  # a 429 is answered before the request is handled
    assert world.vouchers_of(payment) == 1


def test_a_refused_voucher_leaves_no_intent_behind():
    payment = rows()[0]
    world = World([payment])
    consumer = world.consumer("a")
    world.po.fail_next(TerminalError("PowerOffice answered 400: the period is locked", reason="lock_date"),
                       method="post_payment")
    with pytest.raises(TerminalError):
        consumer.apply(event(payment))
    assert world.intents.intents == {}


def test_each_claim_is_judged_by_what_was_written_between_the_read_and_it():
    store = MemoryIntentStore()
    intent = Intent("a", 1.0, 10, "2026-01-01")
    since = store.position()
    assert store.claim("r1", intent, since).won
    store.clear("r1")
    assert not store.claim("r1", intent, since).won  # cleared meanwhile: someone finished it
    assert store.claim("r1", intent, store.position()).won
    store.put("r1", replace(intent, owner="b"))
    lost = store.claim("r1", intent, since=store.position() - 1)
    assert not lost.won and lost.overtook == replace(intent, owner="b")
    assert store.claim("r2", intent, since=0).won  # nothing was ever written for it


def _posting_like(applier: PaymentApplier, payment: PaymentRow):
    """The voucher the other consumer posts for this payment (same reference, same amount)."""
    from vb2po.poweroffice.models import PaymentPosting

    facts = applier.visma[1].facts(payment, START.date())
    return PaymentPosting(
        external_import_reference=external_import_reference(1, int(payment.jno), int(payment.entno)),
        voucher_date=facts.voucher_date, posting_date=facts.voucher_date, currency_code=facts.currency,
        amount=facts.amount, bank_account_id=applier.apis[1].account_id(1920), customer_no=facts.customer_no,
        invoice_no=int(facts.invoice_no) if facts.invoice_no else None, description=facts.text,
    )


def test_balances_stay_right_when_every_other_answer_is_lost():
    payments = rows()
    world = World(payments)
    consumer = world.consumer("a")
    for i, row in enumerate(payments):
        if i % 2 == 0:
            world.po.lose_next_answer(lost_connection(), method="post_payment")
        with pytest.raises(TransientError) if i % 2 == 0 else nullcontext():
            consumer.apply(event(row))
        if i % 2 == 0:
            assert consumer.apply(event(row)) == ALREADY_APPLIED
    assert all(world.vouchers_of(r) == 1 for r in payments)
    assert world.visma.marked == {(int(r.jno), int(r.entno)) for r in payments}
    expected = {i.invoice_no: i.outstanding for i in invoices(SPEC)}
    assert {i.invoice_no: i.balance for i in world.po.get_invoices(sorted(expected))} == expected


def a_payment_registered_once_whose_marker_is_gone() -> tuple[World, PaymentRow]:
    """Registered and marked, then unmarked in Visma the way a marker change or a database restored
    from a backup leaves it; no intent is left to say it was posted."""
    payment = rows()[0]
    world = World([payment])
    assert world.consumer("a").apply(event(payment)) == APPLIED
    world.visma.marked.clear()
    assert world.intents.intents == {}
    return world, payment


def test_a_republished_payment_already_in_poweroffice_is_looked_up_and_only_marked():
    world, payment = a_payment_registered_once_whose_marker_is_gone()
    assert world.consumer("b").apply(event(payment), recheck=True) == ALREADY_APPLIED
    assert world.vouchers_of(payment) == 1
    assert (int(payment.jno), int(payment.entno)) in world.visma.marked
    assert world.po.calls["ledger_entries"] == 1


def test_without_the_recheck_such_a_payment_would_be_registered_twice():
    """Why the sweep and fetch-now mark what they republish: the intents alone cannot see it."""
    world, payment = a_payment_registered_once_whose_marker_is_gone()
    assert world.consumer("b").apply(event(payment)) == APPLIED
    assert world.vouchers_of(payment) == 2


def test_a_republished_payment_not_in_poweroffice_yet_is_posted_once_after_the_look_up():
    payment = rows()[0]
    world = World([payment])
    assert world.consumer("a").apply(event(payment), recheck=True) == APPLIED
    assert world.vouchers_of(payment) == 1
    assert world.po.calls["ledger_entries"] == 1 and world.po.calls["post_payment"] == 1
