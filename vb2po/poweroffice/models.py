"""What goes into and comes out of PowerOffice, as plain values with Decimal money. No I/O.

`from_dto` reads PowerOffice's PascalCase JSON; it is shared by the HTTP client and the
in-memory fake, so both hand the consumer exactly the same objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Mapping

MAX_EXTERNAL_IMPORT_REFERENCE = 50  # PowerOffice's limit on ExternalImportReference


def _money(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value if value is not None else 0))


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _stamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class PaymentPosting:
    """One payment to register: money received from a customer against one invoice.

    `amount` is positive = money received. `external_import_reference` must be
    deterministic for the payment (e.g. derived from the Visma row) so a replay is
    recognised as already applied. `bank_account_id` and `customer_account_id` are
    PowerOffice account *ids*, not account numbers; leave `customer_account_id` unset to
    have the client take it from its customer cache.
    """

    external_import_reference: str
    voucher_date: date
    posting_date: date
    currency_code: str
    amount: Decimal
    bank_account_id: int
    customer_no: int
    invoice_no: int
    description: str = ""
    customer_account_id: int | None = None

    def __post_init__(self) -> None:
        ref = self.external_import_reference
        if not ref or not ref.strip() or len(ref) > MAX_EXTERNAL_IMPORT_REFERENCE:
            raise ValueError(f"external_import_reference must be 1..{MAX_EXTERNAL_IMPORT_REFERENCE} characters, "
                             f"got {len(ref or '')}: {ref!r}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount <= 0:
            raise ValueError(f"amount must be a positive Decimal (money received), got {self.amount!r}")
        if self.amount != self.amount.quantize(Decimal("0.01")):
            raise ValueError(f"amount must have at most two decimals, got {self.amount}")
        if len(self.currency_code) != 3 or not self.currency_code.isalpha() or not self.currency_code.isupper():
            raise ValueError(f"currency_code must be an ISO 4217 code like NOK, got {self.currency_code!r}")


PostingOutcome = Literal["applied", "already_applied"]
APPLIED: PostingOutcome = "applied"
ALREADY_APPLIED: PostingOutcome = "already_applied"


@dataclass(frozen=True)
class PostingResult:
    outcome: PostingOutcome
    external_import_reference: str
    voucher_id: str | None = None  # known only when this call created the voucher

    @property
    def applied(self) -> bool:
        return self.outcome == APPLIED

    @property
    def already_applied(self) -> bool:
        return self.outcome == ALREADY_APPLIED


@dataclass(frozen=True)
class Customer:
    id: int
    number: int
    name: str
    subledger_account_id: int
    is_archived: bool = False
    external_number: int | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "Customer":
        return cls(id=int(d["Id"]), number=int(d["Number"]), name=d.get("Name") or "",
                   subledger_account_id=int(d["SubledgerAccountId"]), is_archived=bool(d.get("IsArchived")),
                   external_number=d.get("ExternalNumber"))


@dataclass(frozen=True)
class Project:
    id: int
    code: str
    name: str
    customer_no: int | None
    deny_time_tracking: bool
    created: datetime | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "Project":
        return cls(id=int(d["Id"]), code=str(d.get("Code") or ""), name=d.get("Name") or "",
                   customer_no=d.get("CustomerNo"), deny_time_tracking=bool(d.get("DenyTimeTracking")),
                   created=_stamp(d.get("CreatedDateTimeOffset")))


@dataclass(frozen=True)
class OutgoingInvoice:
    id: str
    invoice_no: int
    customer_no: int
    total_amount: Decimal
    balance: Decimal  # still owed, in the client's currency; 0 = paid
    currency_code: str
    due_date: date | None
    is_reversed: bool = False

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "OutgoingInvoice":
        return cls(id=str(d["Id"]), invoice_no=int(d["InvoiceNo"]), customer_no=int(d["CustomerNo"]),
                   total_amount=_money(d.get("TotalAmount")), balance=_money(d.get("Balance")),
                   currency_code=d.get("CurrencyCode") or "NOK", due_date=_day(d.get("DueDate")),
                   is_reversed=bool(d.get("IsReversed")))


@dataclass(frozen=True)
class OpenItem:
    id: int
    customer_no: int
    invoice_no: str | None
    amount: Decimal
    balance: Decimal
    posting_date: date | None
    due_date: date | None
    external_import_reference: str | None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "OpenItem":
        return cls(id=int(d["Id"]), customer_no=int(d["CustomerAccountNo"]), invoice_no=d.get("InvoiceNo"),
                   amount=_money(d.get("Amount")), balance=_money(d.get("Balance")),
                   posting_date=_day(d.get("PostingDate")), due_date=_day(d.get("DueDate")),
                   external_import_reference=d.get("ExternalImportReference"))
