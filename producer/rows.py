"""Visma rows -> events. Pure: a row that cannot become a valid event raises `BadRow`.

What a row means is decided once, in `vb2po.visma.payments.interpret` (the consumer reads the
row again through it before it posts); this module only wraps that meaning in an event. Any
failure while doing so, expected or not, is the row's: it becomes a `BadRow`, never an
exception that would stop the company's poll.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable, NamedTuple
from zoneinfo import ZoneInfo

from pydantic_core import to_json

from schemas.codec import encode
from schemas.events import (
    COMPANY_MAX,
    EARLIEST_CHANGE,
    FIRST_VOUCHER_DATE,
    INVOICE_NO_MAX,
    LAST_VOUCHER_DATE,
    LATEST_CHANGE,
    MONEY_LIMIT,
    PAYMENT_EVENT,
    SCHEMA_VERSION,
    TEXT_MAX,
    PaymentEvent,
    PaymentPayload,
    Source,
    payment_event_id,
    payment_event_id_text,
    row_key,
)
from vb2po.currencies import ALPHA
from vb2po.visma.clock import visma_change_time
from vb2po.visma.payments import BadRow, CurrencyBook, PaymentFacts, PaymentRow, PaymentRule, interpret
from vb2po.visma.queries import Position

__all__ = ["BadRow", "EncodedPayment", "PaymentRow", "RowReader", "row_position"]

# A change time whose local date lies in here is within `Moment`'s bounds in any zone.
_SAFE_DAYS = ((EARLIEST_CHANGE + timedelta(days=1)).date(), (LATEST_CHANGE - timedelta(days=1)).date())
# The currency codes `PaymentPayload` takes without asking (its pattern, and a code ISO 4217 knows).
_PLAIN_CODES = frozenset(code for code in ALPHA if re.fullmatch(r"[A-Z]{3}", code))


def row_position(row: PaymentRow) -> Position | None:
    """Where the row stands in change order; None when its key or change stamp is not a number."""
    try:
        return Position(int(row.ch_dt or 0), int(row.ch_time or 0), int(row.jno), int(row.entno))
    except (TypeError, ValueError):
        return None


class EncodedPayment(NamedTuple):
    """A payment event as it goes on the topic, with the facts the poller needs besides its bytes."""

    customer_no: int
    jno: int
    entno: int
    occurred_at: datetime
    value: bytes  # the event's JSON, byte for byte what `schemas.codec.encode` makes of the validated event


@dataclass(frozen=True)
class RowReader:
    """Everything needed to turn one company's CustTr rows into payment events."""

    company_no: int
    rule: PaymentRule
    currencies: CurrencyBook
    time_column: str
    zone: ZoneInfo
    # The company itself fits the event schema (else every row takes the validating path, which says why).
    _plain_company: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = (isinstance(self.company_no, int) and 1 <= self.company_no <= COMPANY_MAX
                 and self.currencies.company_currency in _PLAIN_CODES)
        object.__setattr__(self, "_plain_company", plain)

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

    def encoded(self, row: PaymentRow, now: datetime) -> EncodedPayment:
        """The row's event encoded for the topic: `encode(self.event(row, now))`; see `encoder`."""
        return self.encoder(now)(row)

    def encoder(self, now: datetime) -> Callable[[PaymentRow], EncodedPayment]:
        """row -> its event encoded for the topic, produced at `now`: `encode(self.event(row, now))`,
        the same bytes and the same `BadRow`s, without building and validating the pydantic models
        when `interpret` has already checked everything the schema would (the common case; building
        the models took a fifth of the producer's time, BENCHMARKS.md "Producer"). Whatever `_plain`
        does not vouch for takes the validating path, which accepts it or says why not."""
        plain_now = self._plain_company and _plain_moment(now)  # (else the validating path refuses every row)
        today = now.astimezone(self.zone).date() if plain_now else None
        rule, currencies, zone = self.rule, self.currencies, self.zone

        def encoded(row: PaymentRow) -> EncodedPayment:
            if today is not None:
                try:
                    facts = interpret(row, rule, currencies, today)
                    occurred_at = self.change_time(row)
                except BadRow:
                    raise
                except Exception:  # noqa: BLE001 - the validating path below meets it again and says what it is
                    pass
                else:
                    try:
                        if occurred_at.tzinfo is zone and _SAFE_DAYS[0] <= occurred_at.date() <= _SAFE_DAYS[1] \
                                and _plain(facts):
                            return EncodedPayment(facts.customer_no, facts.jno, facts.entno, occurred_at,
                                                  to_json(self._document(facts, occurred_at, now)))
                    except Exception:  # noqa: BLE001 - not plain after all: the validating path decides
                        pass
            event = self.event(row, now)
            p = event.payload
            return EncodedPayment(p.customer_no, p.jno, p.entno, event.occurred_at, encode(event))
        return encoded

    def _document(self, facts: PaymentFacts, occurred_at: datetime, now: datetime) -> dict:
        """The event as `PaymentEvent.model_dump()` gives it: its fields in their declared order."""
        company_no, jno, entno = self.company_no, facts.jno, facts.entno
        return {
            "event_id": payment_event_id_text(company_no, jno, entno),
            "schema_version": SCHEMA_VERSION,
            "source": {"company_no": company_no, "table": "CustTr", "key": row_key(jno, entno)},
            "occurred_at": occurred_at,
            "produced_at": now,
            "event_type": PAYMENT_EVENT,
            "payload": {
                "company_no": company_no, "jno": jno, "entno": entno, "customer_no": facts.customer_no,
                "invoice_no": facts.invoice_no, "kind": facts.kind, "amount": facts.amount, "currency": facts.currency,
                "company_amount": facts.company_amount, "company_currency": facts.company_currency,
                "voucher_no": facts.voucher_no, "voucher_date": facts.voucher_date, "text": facts.text,
            },
        }

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


def _plain(facts: PaymentFacts) -> bool:
    """Facts that `PaymentPayload` would take as they are: within every bound of its fields, in the
    types its validation would turn them into (so serialising them gives the same JSON)."""
    invoice_no = facts.invoice_no
    return (type(facts.jno) is int and type(facts.entno) is int and type(facts.customer_no) is int
            and type(facts.voucher_no) is int and type(facts.text) is str and len(facts.text) <= TEXT_MAX
            and (invoice_no is None or (type(invoice_no) is str and invoice_no.isascii()
                                        and 1 <= len(invoice_no) <= INVOICE_NO_MAX and invoice_no == invoice_no.strip()))
            and facts.currency in _PLAIN_CODES and _plain_money(facts.amount)
            and (facts.company_amount is None) == (facts.company_currency is None)
            and (facts.company_currency is None or (facts.company_currency in _PLAIN_CODES
                                                    and facts.company_currency != facts.currency
                                                    and _plain_money(facts.company_amount)))
            and type(facts.voucher_date) is date and FIRST_VOUCHER_DATE <= facts.voucher_date <= LAST_VOUCHER_DATE)


def _plain_money(amount: Decimal | None) -> bool:
    """A positive amount within `PositiveMoney`'s bounds (its digits and decimals are counted without
    trailing zeros, and `to_money` lets through no more than 6 decimals and 22 integer digits)."""
    return type(amount) is Decimal and amount.is_finite() and 0 < amount < MONEY_LIMIT


def _plain_moment(moment: datetime) -> bool:
    return type(moment) is datetime and moment.utcoffset() is not None and EARLIEST_CHANGE <= moment <= LATEST_CHANGE
