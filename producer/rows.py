"""Visma rows -> events. Pure: a row that cannot become a valid event raises `BadRow`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.events import PaymentEvent, PaymentPayload, Source, payment_event_id
from vb2po.visma.money import BadAmount, to_money
from vb2po.visma.queries import Position


class BadRow(ValueError):
    """A row that cannot become an event; goes to the dead-letter topic with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PaymentRow:
    """One selected CustTr row, in `queries.PAYMENT_COLUMNS` order plus the change time."""

    jno: object
    entno: object
    cust_no: object
    vo_no: object
    vo_dt: object
    vo_tp: object
    txt: object
    am: object
    invo_no: object
    ch_dt: object
    ch_time: object

    @classmethod
    def from_tuple(cls, row: tuple) -> "PaymentRow":
        return cls(*row)

    @property
    def key(self) -> str:
        return f"JNo={self.jno};EntNo={self.entno}"

    def position(self) -> Position:
        return Position(int(self.ch_dt or 0), int(self.ch_time or 0), int(self.jno), int(self.entno))


def visma_date(yyyymmdd: int) -> date:
    value = int(yyyymmdd)
    return date(value // 10000, value // 100 % 100, value % 100)


def visma_change_time(ch_dt: int, ch_time: int, time_column: str, zone: ZoneInfo) -> datetime:
    """Visma's zone-less local change time as an aware datetime; `ChDt = 0` means unknown."""
    if not ch_dt:
        return datetime(1970, 1, 1, tzinfo=zone)
    day = visma_date(ch_dt)
    if time_column == "ChTmms":
        return datetime.combine(day, time(0), tzinfo=zone) + timedelta(milliseconds=int(ch_time))
    hhmm = int(ch_time)
    return datetime.combine(day, time(hhmm // 100, hhmm % 100), tzinfo=zone)


def payment_event(
    row: PaymentRow, *, company_no: int, currency: str, time_column: str, zone: ZoneInfo, now: datetime
) -> PaymentEvent:
    if row.jno is None or row.entno is None:
        raise BadRow("missing_key", f"company {company_no}: CustTr row without JNo/EntNo")
    if row.cust_no is None or int(row.cust_no) <= 0:
        raise BadRow("missing_customer", f"company {company_no} {row.key}: no customer number")
    invoice_no = (row.invo_no or "").strip() if isinstance(row.invo_no, str) else row.invo_no
    if not invoice_no:
        raise BadRow("missing_invoice_no", f"company {company_no} {row.key}: payment without invoice number")
    try:
        amount = -to_money(row.am)  # Visma posts money received as a credit (negative)
    except BadAmount as exc:
        raise BadRow("unreadable_amount", f"company {company_no} {row.key}: {exc}") from exc
    try:
        return PaymentEvent(
            event_id=payment_event_id(company_no, int(row.jno), int(row.entno)),
            source=Source(company_no=company_no, table="CustTr", key=row.key),
            occurred_at=visma_change_time(row.ch_dt, row.ch_time, time_column, zone),
            produced_at=now,
            payload=PaymentPayload(
                company_no=company_no, jno=int(row.jno), entno=int(row.entno), customer_no=int(row.cust_no),
                invoice_no=str(invoice_no), amount=amount, currency=currency, voucher_no=int(row.vo_no or 0),
                voucher_date=visma_date(row.vo_dt), text=str(row.txt or ""),
            ),
        )
    except (ValidationError, ValueError) as exc:
        raise BadRow("invalid_event", f"company {company_no} {row.key}: {exc}") from exc
