"""Event contracts between producer and consumer. Pure pydantic models: no I/O here.

Every event has the same envelope; `event_id` is deterministic (a UUIDv5 of the Visma fact),
so a row published twice, by a retry, a restart or the safety-net sweep, carries the same id.
Money is Decimal and travels as a JSON string, never as a float.

The models are the first line of defence against bad input (a replay, an operator, an older
version, a hostile writer): every field is bounded by what the Visma column it comes from can
hold, and the envelope must agree with the payload (company, row key, event id). What needs the
settings to judge (is the company configured, is the currency allowed) is checked by the
consumer (`consumer.validation`).

Schema versions: 1 (the first contract) and 2 (bounds on every field; a payment may carry no
invoice number, be a reversal, and be in a foreign currency with its company-currency amount).
Both are read; producers write 2.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Annotated, Final, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from vb2po.currencies import ALPHA

# Fixed forever: changing it would give every known fact a new identity.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3d5e-5b0e-9a57-7662706f0001")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes

PAYMENT_EVENT: Final = "visma.payment.received"  # Final: typed as the literal, the models' event_type default
CREDIT_BLOCK_EVENT: Final = "visma.customer.credit_block"
SCHEMA_VERSION = 2  # what producers write
READABLE_SCHEMA_VERSIONS = (1, 2)

# What the Visma columns can hold (INT keys and numbers, DECIMAL(28,6) money, company F0001..F9999).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
MONEY_LIMIT = Decimal(10) ** 22
COMPANY_MAX = 9999
TEXT_MAX = 60  # CustTr.Txt
INVOICE_NO_MAX = 20  # CustTr.InvoNo
FIRST_VOUCHER_DATE, LAST_VOUCHER_DATE = date(2000, 1, 1), date(2100, 12, 31)
EARLIEST_CHANGE = datetime(1970, 1, 1, tzinfo=timezone.utc)  # Visma's ChDt = 0 ("unknown") maps here
LATEST_CHANGE = datetime(2100, 12, 31, tzinfo=timezone.utc)

CompanyNo = Annotated[int, Field(ge=1, le=COMPANY_MAX)]
VismaInt = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]
PositiveVismaInt = Annotated[int, Field(ge=1, le=INT_MAX)]
Money = Annotated[Decimal, Field(gt=-MONEY_LIMIT, lt=MONEY_LIMIT, max_digits=28, decimal_places=6, allow_inf_nan=False)]
PositiveMoney = Annotated[Decimal, Field(gt=0, lt=MONEY_LIMIT, max_digits=28, decimal_places=6, allow_inf_nan=False)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Moment = Annotated[AwareDatetime, Field(ge=EARLIEST_CHANGE, le=LATEST_CHANGE)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _known_currency(code: str | None) -> str | None:
    if code is not None and code not in ALPHA:
        raise ValueError(f"{code!r} is not an ISO 4217 currency")
    return code


class Source(_Frozen):
    """Where in Visma the fact lives."""

    company_no: CompanyNo
    table: Literal["CustTr", "Actor"]
    key: Annotated[str, StringConstraints(max_length=64)]  # the row key, e.g. "JNo=12;EntNo=3"


class PaymentPayload(_Frozen):
    company_no: CompanyNo
    jno: VismaInt
    entno: VismaInt
    customer_no: PositiveVismaInt
    invoice_no: Annotated[str, StringConstraints(min_length=1, max_length=INVOICE_NO_MAX, strip_whitespace=True)] | None = \
        Field(None, description="the invoice the payment pays; none: the row carries no invoice number")
    kind: Literal["payment", "reversal"] = Field(
        "payment", description="payment: money received; reversal: a counter-row in Visma that undoes a payment")
    amount: PositiveMoney = Field(description="money received (or reversed), positive, in `currency`")
    currency: CurrencyCode = Field(description="ISO 4217 code of `amount`: the payment's (and its invoice's) currency")
    company_amount: PositiveMoney | None = Field(None, description="the same amount in the company currency "
                                                                   "(Visma's Am); none: `currency` is the company currency")
    company_currency: CurrencyCode | None = None
    voucher_no: VismaInt
    voucher_date: Annotated[date, Field(ge=FIRST_VOUCHER_DATE, le=LAST_VOUCHER_DATE)]
    text: Annotated[str, StringConstraints(max_length=TEXT_MAX)] = ""

    _currencies = field_validator("currency", "company_currency")(_known_currency)

    @model_validator(mode="after")
    def _amounts_agree(self) -> "PaymentPayload":
        if (self.company_amount is None) != (self.company_currency is None):
            raise ValueError("company_amount and company_currency come together")
        if self.company_currency is not None and self.company_currency == self.currency:
            raise ValueError("company_currency is only given for a payment in a foreign currency")
        return self

    @property
    def key(self) -> str:
        return row_key(self.jno, self.entno)


class CreditBlockPayload(_Frozen):
    company_no: CompanyNo
    customer_no: PositiveVismaInt
    actor_no: VismaInt
    blocked: bool
    credit_limit: Money
    sequence: int = Field(ge=1, le=2**53, description="n-th block/lift change published for this customer")
    reasserted: bool = Field(False, description="a periodic re-statement of a standing block, not a change")


class _Envelope(_Frozen):
    event_id: uuid.UUID
    schema_version: Literal[1, 2]  # required: a message that names no version is not ours
    source: Source
    occurred_at: Moment  # Visma's change time, made explicit with the configured zone
    produced_at: Moment


class PaymentEvent(_Envelope):
    event_type: Literal["visma.payment.received"] = PAYMENT_EVENT
    payload: PaymentPayload

    @model_validator(mode="after")
    def _envelope_agrees(self) -> "PaymentEvent":
        p = self.payload
        _same("source.company_no", self.source.company_no, "payload.company_no", p.company_no)
        _same("source.table", self.source.table, "the payments table", "CustTr")
        _same("source.key", self.source.key, "the payload's row key", p.key)
        if self.event_id.bytes != _uuid5_bytes(f"payment/{p.company_no}/{p.jno}/{p.entno}"):  # (a UUID costs more)
            _same("event_id", self.event_id, "the id of that row", payment_event_id(p.company_no, p.jno, p.entno))
        return self


class CreditBlockEvent(_Envelope):
    event_type: Literal["visma.customer.credit_block"] = CREDIT_BLOCK_EVENT
    payload: CreditBlockPayload

    @model_validator(mode="after")
    def _envelope_agrees(self) -> "CreditBlockEvent":
        p = self.payload
        _same("source.company_no", self.source.company_no, "payload.company_no", p.company_no)
        _same("source.table", self.source.table, "the customers table", "Actor")
        _same("source.key", self.source.key, "the payload's actor key", f"ActNo={p.actor_no}")
        _same("event_id", self.event_id, "the id of that change",
              credit_block_event_id(p.company_no, p.customer_no, p.sequence, p.blocked))
        return self


def _same(name: str, value: object, other_name: str, other: object) -> None:
    if value != other:
        raise ValueError(f"{name} {str(value)[:80]!r} differs from {other_name} {str(other)[:80]!r}")


Event = Annotated[Union[PaymentEvent, CreditBlockEvent], Field(discriminator="event_type")]


def row_key(jno: int, entno: int) -> str:
    return f"JNo={jno};EntNo={entno}"


def payment_event_id(company_no: int, jno: int, entno: int) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"payment/{company_no}/{jno}/{entno}")


def _uuid5_bytes(name: str) -> bytes:
    """uuid.uuid5(EVENT_NAMESPACE, name).bytes without building the UUID: every consumed event is
    checked against its id, a replay's included."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(digest)


def payment_event_id_text(company_no: int, jno: int, entno: int) -> str:
    """`str(payment_event_id(...))` without the UUID object (what the producer writes, per event)."""
    x = _uuid5_bytes(f"payment/{company_no}/{jno}/{entno}").hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


def credit_block_event_id(company_no: int, customer_no: int, sequence: int, blocked: bool) -> uuid.UUID:
    """The n-th block/lift of a customer; a re-assertion repeats the id of the change it restates."""
    return uuid.uuid5(EVENT_NAMESPACE, f"credit_block/{company_no}/{customer_no}/{sequence}/{int(blocked)}")


def customer_key(company_no: int, customer_no: int) -> bytes:
    """Kafka message key: one customer's events land in one partition, in order."""
    return f"{company_no}:{customer_no}".encode()
