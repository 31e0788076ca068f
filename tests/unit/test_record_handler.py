"""One place decides: transient errors are retried with backoff (Retry-After honoured),
terminal ones and undecodable messages are dead-lettered with reason, attempts and times."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from consumer.dead_letters import FakeDeadLetterSink
from consumer.handler import Record, RecordHandler, StopRequested
from schemas.codec import encode
from schemas.events import PaymentEvent, PaymentPayload, Source, payment_event_id
from vb2po.errors import TerminalError, TransientError
from vb2po.retry import Backoff

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def payment_record() -> Record:
    event = PaymentEvent(
        event_id=payment_event_id(1, 5, 6), source=Source(company_no=1, table="CustTr", key="JNo=5;EntNo=6"),
        occurred_at=NOW, produced_at=NOW,
        payload=PaymentPayload(company_no=1, jno=5, entno=6, customer_no=10000, invoice_no="100001",
                               amount=Decimal("10.00"), currency="NOK", voucher_no=1, voucher_date=date(2026, 3, 1)),
    )
    return Record("payments", 2, 40, b"1:10000", encode(event))


class Scripted:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def apply(self, event):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def handler(payments, sink):
    return RecordHandler(payments, Scripted(), sink, backoff=Backoff(base_s=0.001, cap_s=0.002), now=lambda: NOW)


def test_transient_errors_are_retried_until_the_payment_is_applied(monkeypatch):
    waits = []
    monkeypatch.setattr("consumer.handler._sleep_unless", lambda cancelled, s: waits.append(s) or False)
    payments = Scripted(TransientError("503", reason="http_503"), TransientError("429", reason="rate_limited", retry_after=1.5), "applied")
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(payment_record()) == "applied"
    assert payments.calls == 3 and sink.letters == []
    assert waits[1] >= 1.5  # Retry-After is a floor for the backoff


def test_terminal_errors_go_to_dead_letters_with_reason_attempts_and_times(monkeypatch):
    monkeypatch.setattr("consumer.handler._sleep_unless", lambda cancelled, s: False)
    payments = Scripted(TransientError("timeout", reason="timeout"), TerminalError("locked period", reason="lock_date"))
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(payment_record()) == "dead_lettered"
    (letter,) = sink.letters
    assert (letter.reason, letter.attempts, letter.company_no, letter.source_key) == ("lock_date", 2, 1, "JNo=5;EntNo=6")
    assert (letter.topic, letter.partition, letter.offset) == ("payments", 2, 40)
    assert letter.first_failed_at == NOW.isoformat() and letter.original


@pytest.mark.parametrize("value", [None, b"", b"{", b'{"event_type": "visma.payment.received"}', b"\xff"])
def test_undecodable_messages_are_dead_lettered_at_once(value):
    payments = Scripted()
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(Record("payments", 0, 1, None, value)) == "dead_lettered"
    assert payments.calls == 0 and sink.letters[0].reason == "undecodable"


def test_a_retry_gives_up_when_the_partition_is_taken_away():
    payments = Scripted(TransientError("503", reason="http_503"))
    with pytest.raises(StopRequested):
        handler(payments, FakeDeadLetterSink()).handle(payment_record(), cancelled=lambda: True)
