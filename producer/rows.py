"""Visma rows -> events. Pure: a row that cannot become a valid event raises `BadRow`.

What a row means is decided once, in `vb2po.visma.payments.interpret` (the consumer reads the
row again through it before it posts); this module only wraps that meaning in an event. Any
failure while doing so, expected or not, is the row's: it becomes a `BadRow`, never an
exception that would stop the company's poll.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas.events import SCHEMA_VERSION, PaymentEvent, PaymentPayload, Source, payment_event_id, row_key
from vb2po.visma.clock import visma_change_time
from vb2po.visma.payments import BadRow, CurrencyBook, PaymentRow, PaymentRule, interpret
from vb2po.visma.queries import Position

__all__ = ["BadRow", "PaymentRow", "RowReader", "row_position"]


def row_position(row: PaymentRow) -> Position | None:
    """Where the row stands in change order; None when its key or change stamp is not a number."""
    try:
        return Position(int(row.ch_dt or 0), int(row.ch_time or 0), int(row.jno), int(row.entno))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RowReader:
    """Everything needed to turn one company's CustTr rows into payment events."""

    company_no: int
    rule: PaymentRule
    currencies: CurrencyBook
    time_column: str
    zone: ZoneInfo

    def change_time(self, row: PaymentRow) -> datetime:
        try:
            return visma_change_time(row.ch_dt, row.ch_time, self.time_column, self.zone)
        except (TypeError, ValueError) as exc:
            raise BadRow("invalid_change_time", f"{row.key}: change time {row.ch_dt!r} {row.ch_time!r}: {exc}") from None

    def event(self, row: PaymentRow, now: datetime) -> PaymentEvent:
        try:
            return self._event(row, now)
        except BadRow:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the row holds, it is this row's problem
            raise BadRow("invalid_event", f"company {self.company_no} {row.key}: {type(exc).__name__}: "
                                          f"{str(exc)[:500]}") from exc

    def _event(self, row: PaymentRow, now: datetime) -> PaymentEvent:
        facts = interpret(row, self.rule, self.currencies, now.astimezone(self.zone).date())
        return PaymentEvent(
            event_id=payment_event_id(self.company_no, facts.jno, facts.entno),
            schema_version=SCHEMA_VERSION,
            source=Source(company_no=self.company_no, table="CustTr", key=row_key(facts.jno, facts.entno)),
            occurred_at=self.change_time(row),
            produced_at=now,
            payload=PaymentPayload(
                company_no=self.company_no, jno=facts.jno, entno=facts.entno, customer_no=facts.customer_no,
                invoice_no=facts.invoice_no, kind=facts.kind, amount=facts.amount, currency=facts.currency,
                company_amount=facts.company_amount, company_currency=facts.company_currency,
                voucher_no=facts.voucher_no, voucher_date=facts.voucher_date, text=facts.text,
            ),
        )
