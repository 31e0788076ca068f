"""What one PowerOffice client holds, as immutable records.

Records are frozen: the ledger replaces a record instead of changing it, so a reader
that got one from the ledger never sees it change half-way (copy-on-write, no locks
needed outside the ledger). Money is Decimal; the wire layer turns it into JSON numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class GeneralLedgerAccount:
    id: int
    account_no: int
    name: str
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: int
    number: int
    name: str
    subledger_account_id: int
    external_number: int | None = None
    is_archived: bool = False
    currency_code: str = "NOK"
    last_changed: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    code: str
    name: str
    customer_id: int | None
    customer_no: int | None
    deny_time_tracking: bool = False
    is_active: bool = True
    created: datetime | None = None
    last_changed: datetime | None = None


@dataclass(frozen=True, slots=True)
class Application:
    """A payment line matched to an invoice: `amount` is the part of the invoice it paid."""

    voucher_id: UUID
    posting_date: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    id: UUID
    invoice_no: int
    customer_id: int
    customer_no: int
    total_amount: Decimal
    opening_balance: Decimal  # what was owed when the sandbox was seeded
    voucher_date: date
    due_date: date | None
    voucher_no: int
    currency_code: str = "NOK"
    exchange_rate: Decimal = Decimal(1)  # client currency per unit of currency_code
    is_reversed: bool = False
    applications: tuple[Application, ...] = ()
    balance_last_changed: datetime | None = None

    @property
    def balance(self) -> Decimal:
        """Still owed, in the invoice's own currency."""
        return self.opening_balance - sum((a.amount for a in self.applications), Decimal(0))

    def in_client_currency(self, amount: Decimal) -> Decimal:
        return (amount * self.exchange_rate).quantize(Decimal("0.01"))

    def balance_at(self, on: date) -> Decimal:
        """Balance as it stood at the end of `on` (payments posted later do not count yet)."""
        paid = sum((a.amount for a in self.applications if a.posting_date <= on), Decimal(0))
        return self.opening_balance - paid


@dataclass(frozen=True, slots=True)
class VoucherLine:
    account_id: int
    posting_date: date
    currency_amount: Decimal  # signed: positive = debit, negative = credit
    invoice_no: str | None = None
    currency_code: str | None = None  # the voucher's when None
    exchange_rate: Decimal | None = None
    description: str | None = None
    custom_matching_reference: str | None = None
    cid: str | None = None
    external_line_reference: str | None = None


@dataclass(frozen=True, slots=True)
class VoucherDraft:
    """A bank voucher as posted, before the ledger accepted it."""

    voucher_date: date
    currency_code: str
    lines: tuple[VoucherLine, ...]
    external_import_reference: str | None = None
    description: str | None = None
    imported_voucher_no: int | None = None


@dataclass(frozen=True, slots=True)
class VoucherRecord:
    id: UUID
    voucher_no: int
    draft: VoucherDraft
    created: datetime


@dataclass(frozen=True, slots=True)
class OpenCustomerEntry:
    """A customer sub-ledger entry left (partly) unmatched: an unmatched payment or an overpayment."""

    id: int
    customer_id: int
    customer_no: int
    voucher_id: UUID
    voucher_no: int
    posting_date: date
    voucher_date: date
    amount: Decimal  # signed as posted on the customer account
    balance: Decimal  # what is left open
    currency_code: str
    external_import_reference: str | None
    created: datetime
    invoice_no: str | None = None  # the InvoiceNo the line named, if it matched no invoice


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line on a customer's sub-ledger account, as `/Customerledger/Statement` lists it."""

    voucher_id: UUID
    voucher_no: int
    customer_no: int
    posting_date: date
    amount: Decimal
    currency_code: str
    invoice_no: str | None
    external_import_reference: str | None


@dataclass(frozen=True, slots=True)
class ClientSummary:
    client_key: str
    customers: int
    projects: int
    invoices: int
    unpaid_invoices: int
    vouchers: int
    invoice_balance_sum: Decimal
    open_entry_balance_sum: Decimal
    lock_date: date | None
    accounts: dict[int, int] = field(default_factory=dict)  # account number -> id


@dataclass(frozen=True, slots=True)
class OpenItem:
    """One open customer sub-ledger entry at a date: an unpaid invoice or an unmatched payment."""

    id: int
    voucher_id: UUID
    voucher_no: int
    voucher_type: str  # "OutgoingInvoice" or "BankJournal"
    customer_id: int
    customer_no: int
    customer_name: str
    invoice_no: str | None
    posting_date: date
    voucher_date: date
    due_date: date | None
    amount: Decimal
    balance: Decimal
    currency_code: str
    external_import_reference: str | None
