"""What the consumer needs from PowerOffice, as a Protocol: the HTTP client and the fake both fit.

Every method raises `TransientError` (retry later) or `TerminalError` (dead-letter with
its `reason`); nothing else escapes. A duplicate payment is not an error: `post_payment`
answers `already_applied`.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Iterable, Protocol, runtime_checkable

from vb2po.poweroffice.models import (
    Customer,
    LedgerEntry,
    OpenItem,
    OutgoingInvoice,
    PaymentPosting,
    PostingResult,
    Project,
)


@runtime_checkable
class PowerOfficeApi(Protocol):
    def post_payment(self, posting: PaymentPosting) -> PostingResult:
        """Register one payment as a bank journal voucher matched to its invoice."""
        ...

    def get_invoices(self, invoice_nos: Iterable[int]) -> list[OutgoingInvoice]:
        ...

    def get_customers(self, customer_nos: Iterable[int]) -> list[Customer]:
        ...

    def prefetch_customers(self, customer_nos: Iterable[int]) -> None:
        """Fill the customer-account cache in bulk, so posting needs no lookups."""
        ...

    def prefetch_all_customers(self) -> int:
        """Every customer's sub-ledger account, in a few paged requests; returns the count."""
        ...

    def customer_account_id(self, customer_no: int) -> int:
        """The customer's sub-ledger account id (cached; one lookup on a miss)."""
        ...

    def account_id(self, account_no: int) -> int:
        """A general-ledger account's id from its number, e.g. the bank account 1920 (cached)."""
        ...

    def list_projects(self, customer_nos: Iterable[int], created_after: datetime | None = None) -> list[Project]:
        ...

    def set_deny_time_tracking(self, project_id: int, deny: bool) -> None:
        ...

    def open_items(self, on: date, invoice_nos: Iterable[int] | None = None,
                   customer_nos: Iterable[int] | None = None) -> list[OpenItem]:
        ...

    def lock_date(self) -> date | None:
        ...

    def ledger_entries(self, customer_no: int, posted_from: date, posted_to: date) -> list[LedgerEntry]:
        """The customer's sub-ledger entries this integration posted in the date range (to find a
        voucher by its ExternalImportReference after an ambiguous outcome)."""
        ...
