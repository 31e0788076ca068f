"""Processing one consumed record to completion: applied, skipped, or dead-lettered.

Transient failures are retried here with backoff (honouring Retry-After) until they succeed or
the service stops; terminal failures and undecodable messages go to the dead-letter topic.
`handle` returns only when the record is fully processed, so its offset may be committed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol, Sequence

from consumer.dead_letters import DeadLetterSink
from consumer.payments import ALREADY_MARKED
from schemas.codec import UndecodableEvent, decode
from schemas.events import CreditBlockEvent, PaymentEvent
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.dead_letters import DeadLetter, original_text
from vb2po.logging_setup import bind_event, event_context
from vb2po.retry import Backoff

log = logging.getLogger(__name__)


class StopRequested(Exception):
    """The service is stopping while a record still waits for a retry: do not commit it."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Prepared:
    """A consumed record after the batch look-up: `done` needs nothing more; the others go to
    `handle` with their event decoded already (None: not decodable, `handle` dead-letters it)."""

    record: Record
    event: PaymentEvent | CreditBlockEvent | None
    done: bool = False


class EventApplier(Protocol):
    def apply(self, event) -> str: ...


# Fewer records than this in one poll (live traffic) are each checked in their lane, as before;
# from this many on (a backlog, a replay) one marker query per company covers the whole poll.
BATCH_LOOKUP_FROM = 20


class RecordHandler:
    def __init__(
        self,
        payments: EventApplier,
        credit_blocks: EventApplier,
        dead_letters: DeadLetterSink,
        *,
        backoff: Backoff = Backoff(),
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        already_marked: Callable[[Sequence[PaymentEvent]], set[tuple[int, int, int]]] = lambda events: set(),
    ):
        self.payments = payments
        self.already_marked = already_marked  # (company, JNo, EntNo) of those payments marked in Visma
        self.credit_blocks = credit_blocks
        self.dead_letters = dead_letters
        self.backoff = backoff
        self.now = now

    def prepare(self, records: Sequence[Record]) -> list[Prepared]:
        """Decode a poll's records once and find, in one query per company, the payments whose
        Visma row is marked already: those are finished here (counted as skipped) without a
        lane, a thread hand-off or a query each, which is what makes a replay fast."""
        events: list[PaymentEvent | CreditBlockEvent | None] = []
        for record in records:
            try:
                events.append(decode(record.value))
            except UndecodableEvent:
                events.append(None)
        payments = [e for e in events if isinstance(e, PaymentEvent)]
        marked = self.already_marked(payments) if len(payments) >= BATCH_LOOKUP_FROM else set()
        prepared = [Prepared(r, e, isinstance(e, PaymentEvent) and _row_key(e) in marked)
                    for r, e in zip(records, events)]
        done = sum(p.done for p in prepared)
        if done:
            metrics.EVENTS_CONSUMED.labels("payment").inc(done)
            metrics.EVENTS_SKIPPED.labels("payment", ALREADY_MARKED).inc(done)
        return prepared

    def handle(self, record: Record, cancelled: Callable[[], bool] = lambda: False,
               event: PaymentEvent | CreditBlockEvent | None = None) -> str:
        """Process `record` (given its `event` when decoded already) to completion; raises
        `StopRequested` if `cancelled()` turns true while it waits for a retry (the service
        stops, or the partition moved elsewhere)."""
        with event_context(topic=record.topic, partition=record.partition, offset=record.offset):
            return self._handle(record, cancelled, event)

    def _handle(self, record: Record, cancelled: Callable[[], bool],
                event: PaymentEvent | CreditBlockEvent | None) -> str:
        if event is None:
            try:
                event = decode(record.value)
            except UndecodableEvent as exc:
                metrics.EVENTS_CONSUMED.labels("unknown").inc()
                return self._dead_letter(record, None, "undecodable", str(exc), attempts=1, first=self.now())
        bind_event(event_id=str(event.event_id), company=event.source.company_no, customer=event.payload.customer_no)
        event_type = "payment" if isinstance(event, PaymentEvent) else "credit_block"
        metrics.EVENTS_CONSUMED.labels(event_type).inc()
        applier = self.payments if isinstance(event, PaymentEvent) else self.credit_blocks
        first_failure: datetime | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return applier.apply(event)
            except TransientError as exc:
                first_failure = first_failure or self.now()
                metrics.TRANSIENT_RETRIES.labels(exc.reason).inc()
                delay = self.backoff.delay(attempt, exc.retry_after)
                log.warning("event %s: %s (attempt %s), retrying in %.2fs", event.event_id, exc, attempt, delay)
                if _sleep_unless(cancelled, delay):
                    raise StopRequested() from exc
            except TerminalError as exc:
                return self._dead_letter(record, event, exc.reason, str(exc), attempts=attempt,
                                         first=first_failure or self.now())

    def _dead_letter(self, record: Record, event: PaymentEvent | CreditBlockEvent | None, reason: str,
                     error: str, *, attempts: int, first: datetime) -> str:
        letter = DeadLetter(
            stage="consumer", reason=reason, error=error,
            company_no=event.source.company_no if event else None,
            source_key=event.source.key if event else None,
            event_id=str(event.event_id) if event else None,
            topic=record.topic, partition=record.partition, offset=record.offset,
            attempts=attempts, first_failed_at=first.isoformat(), failed_at=self.now().isoformat(),
            original=original_text(record.value),
        )
        self.dead_letters.send(letter, record.key)
        event_type = "unknown" if event is None else ("payment" if isinstance(event, PaymentEvent) else "credit_block")
        metrics.DEAD_LETTERED.labels(event_type, reason).inc()
        log.error("dead-lettered %s[%s]@%s: %s: %s", record.topic, record.partition, record.offset, reason, error,
                  extra={"reason": reason, "event_type": event_type})
        return "dead_lettered"


def _row_key(event: PaymentEvent) -> tuple[int, int, int]:
    return event.payload.company_no, event.payload.jno, event.payload.entno


def _sleep_unless(cancelled: Callable[[], bool], seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `cancelled()` is."""
    deadline = time.monotonic() + seconds
    while not cancelled():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(0.1, left))
    return True
