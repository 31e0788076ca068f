"""What a CustTr row means for vb2po: a payment to register, a reversal of one, or nothing.

Pure. The producer turns a row into an event with `interpret`; the consumer reads the same row
again before it posts anything and compares it with the event through the same function, so
both sides share one definition of a payment. A row that holds something its columns allow but
no payment can be (an amount of 1e30, a date 20261032, a currency no one knows) raises `BadRow`
with a reason a person understands.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, Mapping

from vb2po.currencies import ALPHA, ISO_4217
from vb2po.visma.clock import visma_date
from vb2po.visma.money import BadAmount, to_money

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
TEXT_MAX = 60
INVOICE_NO_MAX = 20
FIRST_VOUCHER_DATE = date(2000, 1, 1)
FUTURE_VOUCHER_DAYS = 366  # a voucher dated more than a year ahead is a typing error, not a payment

PAYMENT: Literal["payment"] = "payment"
REVERSAL: Literal["reversal"] = "reversal"


class BadRow(ValueError):
    """A row that cannot become an event; goes to the dead-letter topic with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # (pickled by the producer's read-ahead process: both arguments, not only the message)
        return type(self), (self.reason, str(self))


@dataclass(slots=True)  # (not frozen: a frozen dataclass costs ~4x to build, and one is built per record of every poll)
class PaymentRow:
    """One CustTr row as selected by `queries` (payment columns, currency columns, change time), each
    value as the driver gave it: anything the column's type allows (hence Any, read with care)."""

    jno: Any
    entno: Any
    cust_no: Any
    vo_no: Any
    vo_dt: Any
    vo_tp: Any
    txt: Any
    am: Any
    invo_no: Any
    ch_dt: Any
    cur: Any
    cur_am: Any
    ch_time: Any

    @classmethod
    def from_tuple(cls, row: tuple) -> "PaymentRow":
        return cls(*row)

    @property
    def key(self) -> str:
        return f"JNo={self.jno};EntNo={self.entno}"


@dataclass(frozen=True)
class PaymentRule:
    """Which rows are payments (negative Am, VoTp in `voucher_types`) and reversals of payments
    (positive Am, VoTp in `reversal_types`), dated from `lookback` on."""

    voucher_types: tuple[int, ...]
    reversal_types: tuple[int, ...]
    lookback: date


@dataclass(frozen=True)
class CurrencyBook:
    """Currency number -> ISO code for one company: the settings' table, then the company's own
    register (table Cur), then ISO 4217 numeric codes. 0 (or nothing) is the company currency."""

    company_currency: str
    settings_codes: Mapping[int, str]
    register: Mapping[int, str] | None  # None: the company database has no Cur table

    def code_of(self, number: Any) -> str:
        if number is None or number == 0 or number == "":
            return self.company_currency
        try:
            value = int(number) if not isinstance(number, bool) else None
        except (TypeError, ValueError):
            value = None
        if value is None:
            raise BadRow("unknown_currency", f"currency number {str(number)[:20]!r} is not a number")
        code = self.settings_codes.get(value)
        if code is None and self.register is not None:
            code = self.register.get(value)
        if code is None and self.register is None and value in ISO_4217:
            code = ISO_4217[value][0]
        if code is None or code not in ALPHA:
            source = "the company's currency register (Cur)" if self.register is not None else "ISO 4217"
            raise BadRow("unknown_currency", f"currency number {value} is unknown to {source} and to the "
                                             "settings' currency.codes")
        return code


def read_register(rows) -> dict[int, str]:
    """The Cur table's (CurNo, ISO) rows as a map; rows that are not a number and an ISO code are left out."""
    register = {}
    for number, iso in rows:
        try:
            code = str(iso).strip().upper()
            if code in ALPHA:
                register[int(number)] = code
        except (TypeError, ValueError):
            continue
    return register


@dataclass(slots=True)  # (not frozen: a frozen dataclass costs ~4x to build, and one is built per record of every poll)
class PaymentFacts:
    """What a payment row says, in the terms of a payment event's payload."""

    jno: int
    entno: int
    customer_no: int
    invoice_no: str | None
    kind: Literal["payment", "reversal"]
    amount: Decimal  # positive, in `currency`
    currency: str
    company_amount: Decimal | None  # positive, in the company currency; None when `currency` is that
    company_currency: str | None
    voucher_no: int
    voucher_date: date
    text: str


def _int(value: Any, what: str, row: PaymentRow) -> int:
    if type(value) is int and INT_MIN <= value <= INT_MAX:  # (what drivers give, per row: no more to ask)
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if not isinstance(value, str) else int(value.strip())
    except (TypeError, ValueError):
        raise BadRow(f"unreadable_{what}", f"{row.key}: {what} {str(value)[:30]!r} is not a number") from None
    if not INT_MIN <= number <= INT_MAX:
        raise BadRow(f"unreadable_{what}", f"{row.key}: {what} {number} is outside Visma's integer range")
    return number


@lru_cache(maxsize=None)
def _quantum(decimals: int) -> Decimal:
    """The smallest amount with `decimals` decimals (0.01 for 2)."""
    return Decimal(1).scaleb(-decimals)


def _text(value: object, limit: int) -> str:
    """Text as a person would read it: valid unicode (lone surrogates replaced), cut to `limit`."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if text.isascii():  # (no surrogate to replace)
        return text.strip()[:limit]
    return text.encode("utf-8", "replace").decode("utf-8").strip()[:limit]


def interpret(row: PaymentRow, rule: PaymentRule, book: CurrencyBook, today: date) -> PaymentFacts:
    """The row as a payment (or reversal) to register; BadRow when it is neither or cannot be read."""
    jno, entno = _int(row.jno, "key", row), _int(row.entno, "key", row)
    try:
        am = to_money(row.am)
    except BadAmount as exc:
        raise BadRow("unreadable_amount", f"{row.key}: Am: {exc}") from None
    voucher_type = _int(row.vo_tp, "voucher_type", row)
    kind: Literal["payment", "reversal"]
    if am < 0 and voucher_type in rule.voucher_types:
        kind = PAYMENT
    elif am > 0 and voucher_type in rule.reversal_types:
        kind = REVERSAL
    else:
        raise BadRow("not_a_payment", f"{row.key}: amount {am} with voucher type {voucher_type} is not a payment "
                                      f"(types {list(rule.voucher_types)}) nor its reversal")
    customer_no = _int(row.cust_no if row.cust_no is not None else 0, "customer", row)
    if customer_no <= 0:
        raise BadRow("missing_customer", f"{row.key}: " + ("no customer number" if customer_no == 0 else
                                                           f"customer number {customer_no} is no customer"))
    try:
        voucher_date = visma_date(row.vo_dt)
    except (TypeError, ValueError):
        raise BadRow("invalid_date", f"{row.key}: voucher date {str(row.vo_dt)[:20]!r} is not a date") from None
    if voucher_date < rule.lookback:
        raise BadRow("before_lookback", f"{row.key}: voucher date {voucher_date} is before the lookback date {rule.lookback}")
    if not FIRST_VOUCHER_DATE <= voucher_date <= today + timedelta(days=FUTURE_VOUCHER_DAYS):
        raise BadRow("invalid_date", f"{row.key}: voucher date {voucher_date} is outside {FIRST_VOUCHER_DATE} .. "
                                     f"a year from today")
    invoice_no = _text(row.invo_no, 1000) or None
    if invoice_no is not None and len(invoice_no) > INVOICE_NO_MAX:
        raise BadRow("invalid_invoice_no", f"{row.key}: invoice number of {len(invoice_no)} characters "
                                           f"(InvoNo holds {INVOICE_NO_MAX})")
    try:
        currency = book.code_of(row.cur)
    except BadRow as exc:
        raise BadRow(exc.reason, f"{row.key}: {exc}") from None
    company_amount: Decimal | None = None
    company_currency: str | None = None
    if currency == book.company_currency:
        amount = abs(am)
    else:
        try:
            cur_am = to_money(row.cur_am)
        except BadAmount as exc:
            raise BadRow("unreadable_amount", f"{row.key}: currency amount: {exc}") from None
        if cur_am == 0 or (cur_am < 0) != (am < 0):
            raise BadRow("currency_amount_mismatch", f"{row.key}: amount {am} {book.company_currency} but currency "
                                                     f"amount {cur_am} {currency}")
        amount, company_amount, company_currency = abs(cur_am), abs(am), book.company_currency
    for value, code in ((amount, currency), (company_amount, company_currency)):
        if value is not None and code is not None and value != value.quantize(_quantum(ALPHA[code])):
            raise BadRow("amount_precision", f"{row.key}: {value} {code} has more than {ALPHA[code]} decimals")
    return PaymentFacts(
        jno=jno, entno=entno, customer_no=customer_no, invoice_no=invoice_no, kind=kind, amount=amount,
        currency=currency, company_amount=company_amount, company_currency=company_currency,
        voucher_no=_int(row.vo_no or 0, "voucher_no", row), voucher_date=voucher_date, text=_text(row.txt, TEXT_MAX),
    )
