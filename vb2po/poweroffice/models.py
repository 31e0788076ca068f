"""What goes into and comes out of PowerOffice, as plain values with Decimal money. No I/O.

`from_dto` reads PowerOffice's PascalCase JSON; it is shared by the HTTP client and the
in-memory fake, so both hand the consumer exactly the same objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Mapping

from vb2po.currencies import ALPHA

MAX_EXTERNAL_IMPORT_REFERENCE = 50  # PowerOffice's limit on ExternalImportReference
MONEY_LIMIT = Decimal(10) ** 22


class UnreadableAnswer(ValueError):
    """A PowerOffice answer that lacks a field vb2po needs, or holds one it cannot read."""


def _field(d: Mapping[str, Any], name: str, read, *, default: Any = ..., what: str = "") -> Any:
    """`read(d[name])`; a missing field gives `default` (or UnreadableAnswer when it is required)."""
    if not isinstance(d, Mapping):
        raise UnreadableAnswer(f"PowerOffice answered {type(d).__name__} where an object{what} was expected")
    value = d.get(name)
    if value is None:
        if default is ...:
            raise UnreadableAnswer(f"PowerOffice's answer{what} lacks {name}")
        return default
    try:
        return read(value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise UnreadableAnswer(f"PowerOffice's answer{what}: {name} {str(value)[:40]!r} is not readable ({exc})") from None


def _money(value: Any) -> Decimal:
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
        raise ValueError("not a finite amount under 10^22")
    return amount


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, (float, Decimal)) and value != int(value):
        raise ValueError("not a whole number")
    return int(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not true or false")
    return value


def _text(value: Any) -> str:
    return str(value)


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
    """One payment to register: money received from a customer, against one invoice or on account.

    `amount` is positive, in `currency_code` (the invoice's currency). `company_amount` is the same
    money in the client's own currency when `currency_code` is a foreign one (PowerOffice takes it
    as the lines' exchange rate). `reversal` undoes a payment registered before: the lines swap
    sides. `invoice_no` None posts on the customer's account without matching an invoice.
    `external_import_reference` must be deterministic for the Visma row so a replay is recognised.
    `bank_account_id` and `customer_account_id` are PowerOffice account *ids*, not numbers; leave
    `customer_account_id` unset to have the client take it from its customer cache.
    """

    external_import_reference: str
    voucher_date: date
    posting_date: date
    currency_code: str
    amount: Decimal
    bank_account_id: int
    customer_no: int
    invoice_no: int | None
    description: str = ""
    customer_account_id: int | None = None
    company_amount: Decimal | None = None
    reversal: bool = False

    def __post_init__(self) -> None:
        ref = self.external_import_reference
        if not ref or not ref.strip() or len(ref) > MAX_EXTERNAL_IMPORT_REFERENCE:
            raise ValueError(f"external_import_reference must be 1..{MAX_EXTERNAL_IMPORT_REFERENCE} characters, "
                             f"got {len(ref or '')}: {ref!r}")
        if self.currency_code not in ALPHA:
            raise ValueError(f"currency_code must be an ISO 4217 code like NOK, got {self.currency_code!r}")
        decimals = ALPHA[self.currency_code]
        for name, value in (("amount", self.amount), ("company_amount", self.company_amount)):
            if value is None and name == "company_amount":
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0 or value >= MONEY_LIMIT:
                raise ValueError(f"{name} must be a positive Decimal under 10^22, got {value!r}")
        if self.amount != self.amount.quantize(Decimal(1).scaleb(-decimals)):
            raise ValueError(f"amount {self.amount} {self.currency_code} has more than {decimals} decimals")

    @property
    def exchange_rate(self) -> Decimal | None:
        """Client currency per unit of `currency_code` (PowerOffice's normalised rate, base 1)."""
        if self.company_amount is None:
            return None
        return (self.company_amount / self.amount).quantize(Decimal("0.000001"))


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
    id: int | None
    number: int
    name: str
    subledger_account_id: int
    is_archived: bool = False
    external_number: int | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "Customer":
        w = " (customer)"
        return cls(id=_field(d, "Id", _int, default=None, what=w), number=_field(d, "Number", _int, what=w),
                   name=_field(d, "Name", _text, default="", what=w),
                   subledger_account_id=_field(d, "SubledgerAccountId", _int, what=w),
                   is_archived=_field(d, "IsArchived", _bool, default=False, what=w),
                   external_number=_field(d, "ExternalNumber", _int, default=None, what=w))


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
        w = " (project)"
        return cls(id=_field(d, "Id", _int, what=w), code=_field(d, "Code", _text, default="", what=w),
                   name=_field(d, "Name", _text, default="", what=w),
                   customer_no=_field(d, "CustomerNo", _int, default=None, what=w),
                   deny_time_tracking=_field(d, "DenyTimeTracking", _bool, default=False, what=w),
                   created=_field(d, "CreatedDateTimeOffset", _stamp, default=None, what=w))


@dataclass(frozen=True)
class OutgoingInvoice:
    """An invoice as PowerOffice documents it: `Balance` is what is still owed in the *client's*
    currency (0 = paid), `TotalAmount` is in the invoice's own `CurrencyCode` (NOK when absent,
    as documented), `CurrencyExchangeRate` converts between them."""

    invoice_no: int
    customer_no: int | None
    balance: Decimal
    currency_code: str
    is_reversed: bool = False
    total_amount: Decimal | None = None
    exchange_rate: Decimal | None = None
    id: str | None = None
    due_date: date | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "OutgoingInvoice":
        w = " (outgoing invoice)"
        currency = _field(d, "CurrencyCode", _text, default="NOK", what=w)
        if currency not in ALPHA:
            raise UnreadableAnswer(f"PowerOffice's answer{w}: CurrencyCode {currency[:10]!r} is no ISO 4217 code")
        return cls(invoice_no=_field(d, "InvoiceNo", _int, what=w),
                   customer_no=_field(d, "CustomerNo", _int, default=None, what=w),
                   balance=_field(d, "Balance", _money, default=Decimal(0), what=w), currency_code=currency,
                   is_reversed=_field(d, "IsReversed", _bool, default=False, what=w),
                   total_amount=_field(d, "TotalAmount", _money, default=None, what=w),
                   exchange_rate=_field(d, "CurrencyExchangeRate", _money, default=None, what=w),
                   id=_field(d, "Id", _text, default=None, what=w), due_date=_field(d, "DueDate", _day, default=None, what=w))


@dataclass(frozen=True)
class OpenItem:
    """An open customer sub-ledger entry: only the documented `Balance`, `InvoiceNo` and
    `ExternalImportReference` are relied on; the rest is read where present."""

    invoice_no: str | None
    balance: Decimal
    external_import_reference: str | None
    customer_no: int | None = None
    amount: Decimal | None = None
    currency_code: str | None = None
    posting_date: date | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "OpenItem":
        w = " (open item)"
        return cls(invoice_no=_field(d, "InvoiceNo", _text, default=None, what=w),
                   balance=_field(d, "Balance", _money, what=w),
                   external_import_reference=_field(d, "ExternalImportReference", _text, default=None, what=w),
                   customer_no=_field(d, "CustomerAccountNo", _int, default=None, what=w),
                   amount=_field(d, "Amount", _money, default=None, what=w),
                   currency_code=_field(d, "CurrencyCode", _text, default=None, what=w),
                   posting_date=_field(d, "PostingDate", _day, default=None, what=w))


@dataclass(frozen=True)
class LedgerEntry:
    """A customer sub-ledger transaction (`/Customerledger/Statement`): what vb2po looks up after an
    ambiguous outcome, by the documented `ExternalImportReference`."""

    external_import_reference: str | None
    customer_no: int | None = None
    amount: Decimal | None = None
    invoice_no: str | None = None

    @classmethod
    def from_dto(cls, d: Mapping[str, Any]) -> "LedgerEntry":
        w = " (ledger entry)"
        return cls(external_import_reference=_field(d, "ExternalImportReference", _text, default=None, what=w),
                   customer_no=_field(d, "CustomerAccountNo", _int, default=None, what=w),
                   amount=_field(d, "Amount", _money, default=None, what=w),
                   invoice_no=_field(d, "InvoiceNo", _text, default=None, what=w))
