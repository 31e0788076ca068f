"""The applied-payments log: one JSON record per payment applied, on an append-only topic
(`kafka.topics.applied`), written by the consumer right after the Visma marker. The admin
console counts "payments registered today / this week" from it (`admin.actions.applied`).

    {"event_id", "company_no", "client", "customer_no", "invoice_no", "amount" (text, Decimal),
     "currency", "applied_at" (ISO 8601, UTC), "reference"}          key: the event id

At least once, never in the way: a record may be written twice (a payment applied by two
consumers around a rebalance), so readers count each event id once; a write that fails is
logged and counted (`vb2po_consumer_applied_log_failures_total`) and never fails the payment,
which is in PowerOffice and marked in Visma by then: only the console's count misses it.

`PaymentApplier` records each payment it registers (or finds registered) and marks; a reversal
is recorded with a negative amount, a payment on account with no invoice number.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Protocol

from kafka import KafkaProducer

from schemas.events import PaymentEvent
from vb2po import metrics
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10


@dataclass(frozen=True)
class AppliedPayment:
    event_id: str
    company_no: int
    client: str
    customer_no: int
    invoice_no: str | None
    amount: Decimal
    currency: str
    applied_at: datetime
    reference: str

    @classmethod
    def of(cls, event: PaymentEvent, client: str, applied_at: datetime, *, reversal: bool = False) -> "AppliedPayment":
        from consumer.payments import external_import_reference  # (payments calls this module)

        p = event.payload
        return cls(str(event.event_id), p.company_no, client, p.customer_no, p.invoice_no,
                   -p.amount if reversal else p.amount, p.currency, applied_at.astimezone(timezone.utc),
                   external_import_reference(p.company_no, p.jno, p.entno))

    def encode(self) -> bytes:
        return json.dumps({
            "event_id": self.event_id, "company_no": self.company_no, "client": self.client,
            "customer_no": self.customer_no, "invoice_no": self.invoice_no, "amount": str(self.amount),
            "currency": self.currency, "applied_at": self.applied_at.isoformat(), "reference": self.reference,
        }, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "AppliedPayment":
        d = json.loads(raw)
        return cls(str(d["event_id"]), int(d["company_no"]), str(d["client"]), int(d["customer_no"]),
                   None if d.get("invoice_no") is None else str(d["invoice_no"]), Decimal(d["amount"]), str(d["currency"]),
                   datetime.fromisoformat(d["applied_at"]), str(d.get("reference", "")))


class AppliedLog(Protocol):
    def record(self, payment: AppliedPayment) -> None:
        """Send it; durable once `flush()` returned."""
        ...

    def flush(self) -> None: ...
    def close(self) -> None: ...


class KafkaAppliedLog:
    """Records go out in batches (the lanes do not wait for them); the consumer flushes before it
    commits an offset, so a record is durable (acks=all) before the offset passes its payment."""

    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer):
        """`producer`: the consumer process's shared one (its owner closes it)."""
        self.topic = kafka.topics.applied
        self._producer = producer

    def record(self, payment: AppliedPayment) -> None:
        try:
            sent = self._producer.send(self.topic, key=payment.event_id.encode(), value=payment.encode())
        except Exception as exc:  # noqa: BLE001 - the payment is applied; only the console's count misses it
            self._failed(payment, exc)
            return
        sent.add_errback(lambda exc: self._failed(payment, exc))

    def _failed(self, payment: AppliedPayment, exc: BaseException) -> None:
        metrics.APPLIED_LOG_FAILURES.inc()
        log.error("applied payment %s could not be written to %s (%s); it is applied, the console's count "
                  "misses it", payment.reference, self.topic, type(exc).__name__)

    def flush(self) -> None:
        try:
            self._producer.flush(WRITE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - as above: a count, never a payment
            metrics.APPLIED_LOG_FAILURES.inc()
            log.error("the applied-payments log could not be flushed to %s (%s); the console's count may miss "
                      "payments", self.topic, type(exc).__name__)

    def close(self) -> None:
        pass  # (the producer is its owner's)


class FakeAppliedLog:
    def __init__(self) -> None:
        self.records: list[AppliedPayment] = []

    def record(self, payment: AppliedPayment) -> None:
        self.records.append(payment)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
