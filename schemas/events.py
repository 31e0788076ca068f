"""Event contracts between producer and consumer. Pure pydantic models: no I/O here.

Every event has the same envelope; `event_id` is deterministic (a UUIDv5 of the Visma fact),
so a row published twice, by a retry, a restart or the safety-net sweep, carries the same id.
Money is Decimal and travels as a JSON string, never as a float.
"""
from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# Fixed forever: changing it would give every known fact a new identity.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3d5e-5b0e-9a57-7662706f0001")

PAYMENT_EVENT = "visma.payment.received"
CREDIT_BLOCK_EVENT = "visma.customer.credit_block"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Source(_Frozen):
    """Where in Visma the fact lives."""

    company_no: int = Field(gt=0)
    table: Literal["CustTr", "Actor"]
    key: str  # the row key, e.g. "JNo=12;EntNo=3"


class PaymentPayload(_Frozen):
    company_no: int = Field(gt=0)
    jno: int
    entno: int
    customer_no: int = Field(gt=0)
    invoice_no: Annotated[str, StringConstraints(min_length=1, max_length=20, strip_whitespace=True)]
    amount: Decimal = Field(gt=0, description="money received, positive, in `currency`")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    voucher_no: int
    voucher_date: date
    text: str = ""


class CreditBlockPayload(_Frozen):
    company_no: int = Field(gt=0)
    customer_no: int = Field(gt=0)
    actor_no: int
    blocked: bool
    credit_limit: Decimal
    sequence: int = Field(ge=1, description="n-th block/lift change published for this customer")
    reasserted: bool = Field(False, description="a periodic re-statement of a standing block, not a change")


class _Envelope(_Frozen):
    event_id: uuid.UUID
    schema_version: int = 1
    source: Source
    occurred_at: AwareDatetime  # Visma's change time, made explicit with the configured zone
    produced_at: AwareDatetime


class PaymentEvent(_Envelope):
    event_type: Literal["visma.payment.received"] = PAYMENT_EVENT
    payload: PaymentPayload


class CreditBlockEvent(_Envelope):
    event_type: Literal["visma.customer.credit_block"] = CREDIT_BLOCK_EVENT
    payload: CreditBlockPayload


Event = Annotated[Union[PaymentEvent, CreditBlockEvent], Field(discriminator="event_type")]


def payment_event_id(company_no: int, jno: int, entno: int) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"payment/{company_no}/{jno}/{entno}")


def credit_block_event_id(company_no: int, customer_no: int, sequence: int, blocked: bool) -> uuid.UUID:
    """The n-th block/lift of a customer; a re-assertion repeats the id of the change it restates."""
    return uuid.uuid5(EVENT_NAMESPACE, f"credit_block/{company_no}/{customer_no}/{sequence}/{int(blocked)}")


def customer_key(company_no: int, customer_no: int) -> bytes:
    """Kafka message key: one customer's events land in one partition, in order."""
    return f"{company_no}:{customer_no}".encode()
