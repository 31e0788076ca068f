"""One error boundary per record: transient failures are retried with backoff (Retry-After
honoured); terminal ones, anything unexpected and anything undecodable is dead-lettered once, with
reason, exception class, attempts and times; the record is always finished."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

import pytest
from kafka.errors import MessageSizeTooLargeError

from consumer.dead_letters import FakeDeadLetterSink, KafkaDeadLetterSink, MemoryDeadLetterMemory, fingerprint
from consumer.handler import RECHECK_AFTER_S, Record, RecordHandler, StopRequested, needs_recheck
from consumer.outcomes import ALREADY_DEAD_LETTERED, DEAD_LETTERED
from schemas.codec import encode
from schemas.events import PaymentEvent, PaymentPayload, Source, payment_event_id
from schemas.headers import republished_header
from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.dead_letters import HEADER_PREFIX, MAX_ORIGINAL_CHARS
from vb2po.retry import Backoff

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def payment_event(jno: int = 5) -> PaymentEvent:
    return PaymentEvent(
        event_id=payment_event_id(1, jno, 6), schema_version=2,
        source=Source(company_no=1, table="CustTr", key=f"JNo={jno};EntNo=6"), occurred_at=NOW, produced_at=NOW,
        payload=PaymentPayload(company_no=1, jno=jno, entno=6, customer_no=10000, invoice_no="100001",
                               amount=Decimal("10.00"), currency="NOK", voucher_no=1, voucher_date=date(2026, 3, 1)),
    )


def payment_record(offset: int = 40, jno: int = 5) -> Record:
    return Record("payments", 2, offset, b"1:10000", encode(payment_event(jno)))


class Scripted:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def apply(self, event, *seen, **options):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def handler(payments, sink, memory=None):
    return RecordHandler(payments, Scripted(), sink, memory=memory, backoff=Backoff(base_s=0.001, cap_s=0.002),
                         now=lambda: NOW)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    waits = []
    monkeypatch.setattr("consumer.handler._sleep_unless", lambda cancelled, s: waits.append(s) or False)
    return waits


def test_transient_errors_are_retried_until_the_payment_is_applied(no_sleep):
    payments = Scripted(TransientError("503", reason="http_503"),
                        TransientError("429", reason="rate_limited", retry_after=1.5), "applied")
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(payment_record()) == "applied"
    assert payments.calls == 3 and sink.letters == []
    assert no_sleep[1] >= 1.5  # Retry-After is a floor for the backoff


def test_terminal_errors_go_to_dead_letters_with_reason_attempts_and_times():
    payments = Scripted(TransientError("timeout", reason="timeout"), TerminalError("locked period", reason="lock_date"))
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(payment_record()) == DEAD_LETTERED
    (letter,) = sink.letters
    assert (letter.reason, letter.attempts, letter.company_no, letter.source_key) == ("lock_date", 2, 1, "JNo=5;EntNo=6")
    assert (letter.topic, letter.partition, letter.offset) == ("payments", 2, 40)
    assert letter.first_failed_at == NOW.isoformat() and letter.original and letter.fingerprint


@pytest.mark.parametrize("exc, exception_class", [
    (OverflowError("int too big to convert"), "OverflowError"),
    (InvalidOperation("[<class 'decimal.InvalidOperation'>]"), "decimal.InvalidOperation"),
    (KeyError("Id"), "KeyError"),
])
def test_an_exception_no_edge_mapped_is_dead_lettered_with_its_class_and_the_record_finishes(exc, exception_class):
    sink = FakeDeadLetterSink()
    assert handler(Scripted(exc), sink).handle(payment_record()) == DEAD_LETTERED
    (letter,) = sink.letters
    assert letter.reason == "unexpected" and letter.exception_class == exception_class
    assert exception_class.split(".")[-1] in letter.error


def test_a_connection_failure_no_edge_mapped_is_retried():
    sink = FakeDeadLetterSink()
    assert handler(Scripted(ConnectionResetError("peer"), "applied"), sink).handle(payment_record()) == "applied"
    assert sink.letters == []


@pytest.mark.parametrize("value, reason", [
    (None, "undecodable"), (b"", "undecodable"), (b"{", "undecodable"), (b"\xff", "undecodable"),
    (b'{"event_type": "visma.payment.received"}', "invalid_event"),
    (b'{"event_type": "something.else"}', "undecodable"),
    (b'{"schema_version": 99, "event_type": "visma.payment.received"}', "unsupported_schema_version"),
    (b"[" * 100_000, "undecodable"),
])
def test_undecodable_messages_are_dead_lettered_at_once(value, reason):
    payments = Scripted()
    sink = FakeDeadLetterSink()
    assert handler(payments, sink).handle(Record("payments", 0, 1, None, value)) == DEAD_LETTERED
    assert payments.calls == 0 and sink.letters[0].reason == reason


def test_an_event_whose_id_is_not_its_rows_is_dead_lettered_unapplied():
    own, other = str(payment_event_id(1, 5, 6)).encode(), str(payment_event_id(1, 7, 6)).encode()
    forged = encode(payment_event(jno=5)).replace(own, other)
    payments, sink = Scripted(), FakeDeadLetterSink()
    assert handler(payments, sink).handle(Record("payments", 0, 1, None, forged)) == DEAD_LETTERED
    assert payments.calls == 0 and sink.letters[0].reason == "invalid_event"
    assert "event_id" in sink.letters[0].error and "differs from the id of that row" in sink.letters[0].error


def test_the_same_bad_content_is_dead_lettered_once_however_often_it_comes_back():
    memory, sink = MemoryDeadLetterMemory(), FakeDeadLetterSink()
    payments = Scripted(TerminalError("invoice unknown", reason="invoice_unknown"))
    h = handler(payments, sink, memory)
    assert h.handle(payment_record(offset=1)) == DEAD_LETTERED
    for offset in (2, 3, 4):  # the sweep publishes the unmarked payment again and again
        assert h.handle(payment_record(offset=offset)) == ALREADY_DEAD_LETTERED
    assert len(sink.letters) == 1 and payments.calls == 1
    assert memory.open_payments() == 1
    memory.forget(sink.letters[0].fingerprint)  # a redrive
    payments.outcomes.append("applied")
    assert h.handle(payment_record(offset=5)) == "applied"


def test_a_huge_message_gives_a_capped_letter_with_the_hash_of_the_original():
    sink = FakeDeadLetterSink()
    value = b'{"text": "' + b"x" * 700_000 + b'"}'
    handler(Scripted(), sink).handle(Record("payments", 0, 7, None, value))
    (letter,) = sink.letters
    assert len(letter.original) == MAX_ORIGINAL_CHARS and letter.original_truncated
    assert letter.original_bytes == len(value) and len(letter.original_sha256) == 64
    assert len(letter.encode()) < 64 * 1024


def test_letters_carry_kafka_connect_style_headers():
    sink = FakeDeadLetterSink()
    handler(Scripted(OverflowError("boom")), sink).handle(payment_record())
    headers = dict(sink.letters[0].headers())
    assert headers[HEADER_PREFIX + "topic"] == b"payments"
    assert headers[HEADER_PREFIX + "partition"] == b"2" and headers[HEADER_PREFIX + "offset"] == b"40"
    assert headers[HEADER_PREFIX + "exception.class.name"] == b"OverflowError"
    assert headers[HEADER_PREFIX + "reason"] == b"unexpected"


def test_a_letter_the_broker_finds_too_large_is_sent_without_its_original():
    class Broker:
        def __init__(self):
            self.sent = []

        def send(self, topic, key, value, headers):
            if b'"original": "{' in value:
                raise MessageSizeTooLargeError("too large")
            self.sent.append(value)

            class Meta:
                partition, offset = 0, len(self.sent)

            class Future:
                def get(self, timeout):
                    return Meta
            return Future()

    broker = Broker()
    assert handler(Scripted(TerminalError("no", reason="validation")), KafkaDeadLetterSink(broker, "dlq")).handle(
        payment_record()) == DEAD_LETTERED
    assert len(broker.sent) == 1 and b'"original": null' in broker.sent[0]


def test_a_letter_that_cannot_be_written_yet_is_retried_and_the_record_waits():
    class Down:
        tries = 0

        def send(self, letter, key):
            self.tries += 1
            if self.tries < 3:
                raise TransientError("broker away", reason="kafka")
            return "0-1"

    down = Down()
    assert handler(Scripted(TerminalError("no", reason="validation")), down).handle(payment_record()) == DEAD_LETTERED
    assert down.tries == 3


def test_a_retry_gives_up_when_the_partition_is_taken_away(monkeypatch):
    monkeypatch.setattr("consumer.handler._sleep_unless", lambda cancelled, s: cancelled())
    payments = Scripted(TransientError("503", reason="http_503"))
    with pytest.raises(StopRequested):
        handler(payments, FakeDeadLetterSink()).handle(payment_record(), cancelled=lambda: True)


def test_the_crash_guard_sets_a_record_aside_unapplied():
    payments, sink = Scripted("applied"), FakeDeadLetterSink()
    assert handler(payments, sink).handle(payment_record(), give_up="the consumer stopped 3 times") == DEAD_LETTERED
    assert payments.calls == 0 and sink.letters[0].reason == "crashed_consumer"


def test_the_crash_guard_hears_once_that_a_record_survived_its_first_attempt(no_sleep):
    """A record that comes back from its first attempt (here: a 503, retried) did not take the
    process down: the guard stops suspecting it, before the retries, and is told only once."""
    told: list[int] = []
    payments = Scripted(TransientError("503", reason="http_503"), TransientError("503", reason="http_503"), "applied")

    def survived() -> None:
        told.append(payments.calls)

    assert handler(payments, FakeDeadLetterSink()).handle(payment_record(), survived=survived) == "applied"
    assert told == [1]


def test_a_record_set_aside_by_the_crash_guard_is_not_reported_as_surviving():
    told: list[bool] = []
    outcome = handler(Scripted("applied"), FakeDeadLetterSink()).handle(
        payment_record(), give_up="the consumer stopped 3 times", survived=lambda: told.append(True))
    assert outcome == DEAD_LETTERED and told == []


def test_republished_and_old_records_are_rechecked_in_poweroffice_fresh_ones_are_not():
    fresh = replace(payment_record(), timestamp_ms=int(NOW.timestamp() * 1000) - 5_000)
    assert not needs_recheck(fresh, NOW)
    assert needs_recheck(replace(fresh, headers=(republished_header(),)), NOW)
    assert needs_recheck(replace(fresh, timestamp_ms=int((NOW.timestamp() - RECHECK_AFTER_S - 1) * 1000)), NOW)
    assert not needs_recheck(replace(fresh, timestamp_ms=None), NOW)


def test_a_bad_copy_of_a_good_payment_does_not_make_the_good_one_look_dead_lettered():
    """`make fuzz` found it: a copy with a foreign source, dead-lettered first, shared the good
    event's fingerprint (id and payload only), so the producer's good event was skipped for good."""
    good = payment_event()
    bad_copy = good.model_copy(update={"source": Source(company_no=7, table="CustTr", key=good.source.key)})
    later_copy = good.model_copy(update={"occurred_at": NOW.replace(hour=13)})
    sweep_again = good.model_copy(update={"produced_at": NOW.replace(hour=14)})
    assert fingerprint(None, bad_copy) != fingerprint(None, good) != fingerprint(None, later_copy)
    assert fingerprint(None, sweep_again) == fingerprint(None, good)  # the sweep's republication is the same content
