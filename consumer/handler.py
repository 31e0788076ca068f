"""Processing one consumed record to completion: applied, skipped, or dead-lettered.

This is the one error boundary per record. Whatever is raised while preparing, applying or
dead-lettering a record ends in one of two outcomes: retried with backoff (honouring
Retry-After) when it is transient, or dead-lettered with the reason and the exception class when
it is terminal (`vb2po.errors.as_vb2po_error` decides for anything an edge did not map). So
`handle` returns only when the record is finished and its offset may be committed; the only way
out without finishing is `StopRequested` (the service stops, or the partition moved elsewhere),
after which the record is read again.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Callable, Protocol, Sequence

from consumer.dead_letters import DeadLetterMemory, DeadLetterSink, MemoryDeadLetterMemory, fingerprint
from consumer.outcomes import ALREADY_DEAD_LETTERED, ALREADY_MARKED, DEAD_LETTERED
from consumer.payments import UNREAD
from consumer.validation import EventContext
from schemas.codec import UndecodableEvent, decode
from schemas.events import CreditBlockEvent, PaymentEvent
from schemas.headers import is_republished
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError, Vb2poError, as_vb2po_error
from vb2po.kafka.dead_letters import DeadLetter, original_fields
from vb2po.logging_setup import bind_event, event_context
from vb2po.retry import Backoff
from vb2po.settings import Settings

log = logging.getLogger(__name__)

CRASHED_CONSUMER = "crashed_consumer"
RECHECK_AFTER_S = 3600.0  # a record older than this is looked up in PowerOffice before it is posted


class StopRequested(Exception):
    """The service is stopping while a record still waits for a retry: do not commit it."""


@dataclass(slots=True)  # (not frozen: a frozen dataclass costs ~4x to build, and one is built per record of every poll)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None  # when it was written to Kafka


@dataclass  # (not frozen: a frozen dataclass costs ~4x to build, and one is built per record of every poll)
class Prepared:
    """A consumed record after the poll's batch work: `done` needs nothing more (the row is marked,
    or this content was dead-lettered before); the others go to `handle` with their event decoded
    (None: not decodable: `error` says why) and, for payments, their Visma row read already."""

    record: Record
    event: PaymentEvent | CreditBlockEvent | None
    error: TerminalError | None = None
    done: bool = False
    seen: object = UNREAD  # the payment's Visma row as the batch read found it
    recheck: bool = False  # ask PowerOffice for the voucher before posting (see `needs_recheck`)

    @cached_property
    def fingerprint(self) -> str:
        """(only when needed: a replay of marked rows never asks, and it is a tenth of such a record's cost)"""
        return fingerprint(self.record.value, self.event)


class EventApplier(Protocol):
    def apply(self, event, *args, **options) -> str: ...


class PaymentsApplier(EventApplier, Protocol):
    """consumer.payments.PaymentApplier as the handler uses it (the batch steps are optional)."""

    def read_rows(self, events: Sequence[PaymentEvent]) -> dict: ...
    def want_invoices(self, events: Sequence[PaymentEvent]) -> None: ...
    def agrees(self, event: PaymentEvent, current) -> bool: ...


def needs_recheck(record: Record, now: datetime) -> bool:
    """Should PowerOffice be asked for the voucher before it is posted? Yes for an event published
    again for a row published before, and for a record written long ago (a replay, a backlog): its
    payment may be registered while the row is unmarked (a changed marker, a restored database).
    Fresh first publications cost no look-up."""
    if is_republished(record.headers):
        return True
    return record.timestamp_ms is not None and now.timestamp() * 1000 - record.timestamp_ms > RECHECK_AFTER_S * 1000


def event_type_of(event: PaymentEvent | CreditBlockEvent | None) -> str:
    return "unknown" if event is None else ("payment" if isinstance(event, PaymentEvent) else "credit_block")


class RecordHandler:
    def __init__(
        self,
        payments: PaymentsApplier,
        credit_blocks: EventApplier,
        dead_letters: DeadLetterSink,
        *,
        settings: Settings | None = None,
        memory: DeadLetterMemory | None = None,
        backoff: Backoff = Backoff(),
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.payments = payments
        self.credit_blocks = credit_blocks
        self.dead_letters = dead_letters
        self.settings = settings
        self._context = EventContext(settings) if settings is not None else None
        self.memory = memory if memory is not None else MemoryDeadLetterMemory()
        self.backoff = backoff
        self.now = now
        self._writing: dict[str, threading.Lock] = {}  # one writer per content: copies in two lanes give one letter
        self._writing_lock = threading.Lock()

    # -- the poll's batch ------------------------------------------------------------------
    def prepare(self, records: Sequence[Record]) -> list[Prepared]:
        """Decode and check a poll's records once; read the payments' Visma rows in one query per
        company and finish those marked already (counted as skipped) without a lane or a query
        each; skip what was dead-lettered before; register the invoices the rest will need.
        Never raises: a failure of the batch work leaves each record to do it on its own.
        (A row marked and agreeing is done whether or not its event was dead-lettered once, so the
        dead-letter memory is asked only about the rest: a replay of marked rows never hashes.)"""
        now = self.now()
        prepared = [self._prepare_one(r, now) for r in records]
        payments = [p.event for p in prepared if p.error is None and isinstance(p.event, PaymentEvent)]
        rows: dict = {}
        if payments and hasattr(self.payments, "read_rows"):
            try:
                rows = self.payments.read_rows(payments)
            except Exception as exc:  # noqa: BLE001 - the batch is an optimisation; each record is safe alone
                log.warning("batch read failed (%s: %s); each payment reads on its own", type(exc).__name__, exc)
            prepared = [self._with_row(p, rows) for p in prepared]
        done = sum(1 for p in prepared if p.done)
        if done:
            metrics.EVENTS_CONSUMED.labels("payment").inc(done)
            metrics.EVENTS_SKIPPED.labels("payment", ALREADY_MARKED).inc(done)
        if done < len(prepared):
            if any(p.error is None and not p.done for p in prepared):
                try:
                    self.memory.sync()
                except Vb2poError as exc:  # each letter is then checked when it is written
                    log.warning("could not read the dead-letter memory (%s)", exc)
            prepared = [p if p.done else self._remembered(p) for p in prepared]
            wanted = [p.event for p in prepared if not p.done and p.error is None and isinstance(p.event, PaymentEvent)]
            if wanted and hasattr(self.payments, "want_invoices"):
                try:
                    self.payments.want_invoices(wanted)
                except Exception as exc:  # noqa: BLE001 - as above: each payment looks its invoice up alone
                    log.warning("invoice look-ahead failed (%s: %s)", type(exc).__name__, exc)
        return prepared

    def _prepare_one(self, record: Record, now: datetime) -> Prepared:
        try:
            event = decode(record.value)
        except UndecodableEvent as exc:
            return Prepared(record, None, TerminalError(str(exc), reason=exc.reason))
        except Exception as exc:  # noqa: BLE001 - one record's problem, whatever it is
            # (decoding the same bytes fails the same way again: never a retry)
            error = as_vb2po_error(exc)
            terminal = error if isinstance(error, TerminalError) else TerminalError(str(error), reason="undecodable")
            return Prepared(record, None, terminal)
        if self._context is not None:
            try:
                self._context.check(event, now.date())
            except TerminalError as exc:
                return Prepared(record, event, exc)
        return Prepared(record, event, recheck=needs_recheck(record, now))

    def _remembered(self, p: Prepared) -> Prepared:
        if self.memory.knows(p.fingerprint):
            metrics.EVENTS_CONSUMED.labels(event_type_of(p.event)).inc()
            metrics.EVENTS_SKIPPED.labels(event_type_of(p.event), ALREADY_DEAD_LETTERED).inc()
            done = replace(p, done=True)
            done.__dict__["fingerprint"] = p.fingerprint  # (cached_property: hashed once)
            return done
        return p

    def _with_row(self, p: Prepared, rows: dict) -> Prepared:
        if p.error is not None or not isinstance(p.event, PaymentEvent):
            return p
        key = (p.event.payload.company_no, p.event.payload.jno, p.event.payload.entno)
        if key not in rows:
            return p
        row = rows[key]
        done = row is not None and row.marked and self.payments.agrees(p.event, row)
        return Prepared(p.record, p.event, None, done=done, seen=row, recheck=p.recheck)

    # -- one record ------------------------------------------------------------------------
    def handle(self, item: Prepared | Record, cancelled: Callable[[], bool] = lambda: False, *,
               give_up: str | None = None, survived: Callable[[], None] | None = None) -> str:
        """Process a record to completion; raises `StopRequested` if `cancelled()` turns true while
        it waits for a retry. `give_up` dead-letters it unapplied with that message (the crash guard);
        `survived` is called once its first attempt has returned, whatever the outcome: the record
        did not take the process down (the crash guard stops suspecting it)."""
        prepared = item if isinstance(item, Prepared) else self.prepare([item])[0]
        record = prepared.record
        with event_context(topic=record.topic, partition=record.partition, offset=record.offset):
            if prepared.done:
                return ALREADY_DEAD_LETTERED if self.memory.knows(prepared.fingerprint) else ALREADY_MARKED
            return self._handle(prepared, cancelled, give_up, survived)

    def _handle(self, p: Prepared, cancelled: Callable[[], bool], give_up: str | None,
                survived: Callable[[], None] | None) -> str:
        event, first = p.event, self.now()
        metrics.EVENTS_CONSUMED.labels(event_type_of(event)).inc()
        if event is not None:
            bind_event(event_id=str(event.event_id), company=event.source.company_no, customer=event.payload.customer_no)
        if give_up is not None:
            return self._dead_letter(p, TerminalError(give_up, reason=CRASHED_CONSUMER), 1, first, cancelled)
        if p.error is not None:
            return self._dead_letter(p, p.error, 1, first, cancelled)
        if event is None:  # (by construction a record without an event carries its error)
            return self._dead_letter(p, TerminalError("the record could not be decoded", reason="undecodable"), 1, first,
                                     cancelled)
        applier = self.payments if isinstance(event, PaymentEvent) else self.credit_blocks
        attempt = 0
        first_failure: datetime | None = None
        while True:
            attempt += 1
            try:
                if isinstance(event, PaymentEvent):
                    return applier.apply(event, p.seen if attempt == 1 else UNREAD, recheck=p.recheck)
                return applier.apply(event)
            except Exception as exc:  # noqa: BLE001 - the boundary: classified below, nothing escapes
                error = as_vb2po_error(exc)
            finally:
                if attempt == 1 and survived is not None:
                    survived()
            first_failure = first_failure or self.now()
            if isinstance(error, TerminalError):
                return self._dead_letter(p, error, attempt, first_failure, cancelled)
            self._wait(error, attempt, cancelled, what=f"event {event.event_id}")

    def _wait(self, error: TransientError, attempt: int, cancelled: Callable[[], bool], what: str) -> None:
        metrics.TRANSIENT_RETRIES.labels(error.reason).inc()
        delay = self.backoff.delay(attempt, error.retry_after)
        log.warning("%s: %s (attempt %s), retrying in %.2fs", what, error, attempt, delay)
        if _sleep_unless(cancelled, delay):
            raise StopRequested() from error

    @contextmanager
    def _writer(self, digest: str):
        with self._writing_lock:
            lock = self._writing.setdefault(digest, threading.Lock())
        with lock:
            yield
        with self._writing_lock:
            if len(self._writing) > 10_000:  # (the memory remembers; the locks need not)
                self._writing.clear()

    def _dead_letter(self, p: Prepared, error: TerminalError, attempts: int, first: datetime,
                     cancelled: Callable[[], bool]) -> str:
        record, event = p.record, p.event
        letter = DeadLetter(
            stage="consumer", reason=error.reason, error=str(error),
            company_no=event.source.company_no if event else None,
            source_key=event.source.key if event else None,
            event_id=str(event.event_id) if event else None,
            topic=record.topic, partition=record.partition, offset=record.offset,
            attempts=attempts, first_failed_at=first.isoformat(), failed_at=self.now().isoformat(),
            exception_class=error.exception_class, fingerprint=p.fingerprint, **original_fields(record.value),
        )
        attempt = 0
        while True:  # a letter that cannot be written yet is retried: the record is not finished before it is
            attempt += 1
            try:
                with self._writer(p.fingerprint):
                    if self.memory.knows(p.fingerprint):  # a copy elsewhere was dead-lettered meanwhile
                        return ALREADY_DEAD_LETTERED
                    letter_id = self.dead_letters.send(letter, record.key)
                    self.memory.remember(p.fingerprint, letter_id, letter)
                break
            except Exception as exc:  # noqa: BLE001 - writing the letter is part of the boundary
                failure = as_vb2po_error(exc)
                transient = failure if isinstance(failure, TransientError) else TransientError(str(failure), reason="kafka")
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                self._wait(transient, attempt, cancelled, what=f"dead letter for {where}")
        event_type = event_type_of(event)
        metrics.DEAD_LETTERED.labels(event_type, error.reason).inc()
        metrics.DEAD_LETTERED_OPEN.set(self.memory.open_payments())
        log.error("dead-lettered %s[%s]@%s: %s: %s", record.topic, record.partition, record.offset, error.reason, error,
                  extra={"reason": error.reason, "event_type": event_type})
        return DEAD_LETTERED


def _sleep_unless(cancelled: Callable[[], bool], seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `cancelled()` is."""
    deadline = time.monotonic() + seconds
    while not cancelled():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(0.1, left))
    return True
