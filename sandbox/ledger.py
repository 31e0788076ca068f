"""One PowerOffice client's books, in memory: pure and thread-safe, no HTTP.

Rules the sandbox enforces when a bank voucher is posted (`post_bank_voucher`), in order:
1. With `unique_references` on (the default), a second voucher with the same
   `ExternalImportReference` is rejected (DuplicateVoucher, 409), as the OpenAPI describes
   ("only one instance of the reference can exist on the client"). The public material does
   not say a real server enforces it with an error, so tests run with it off too.
2. Every line needs a non-zero amount and an existing account: a general-ledger account id
   or a customer's `SubledgerAccountId` (what the OpenAPI calls "the id of the general
   ledger account or the subledger account"). The lines must sum to 0.
3. No line may be dated on or before the lock date (OpenAPI LockDateSettingsDto: "not
   possible to create accounting entries on this date or any previous date").
4. Matching, no kinder than the contract. Sign convention: positive CurrencyAmount = debit,
   negative = credit. A credit on a customer's sub-ledger account with an `InvoiceNo` is
   matched to the invoice of that number and lowers what it owes (capped at what is owed; an
   overpayment stays open as a credit entry); a debit with an `InvoiceNo` raises it again (a
   reversed payment, capped at the invoice total). The contract promises no check that the
   invoice exists, belongs to that customer, is unreversed or is in the line's currency, so
   the sandbox does none: an unknown `InvoiceNo` is accepted as an unmatched open entry, and
   a line in another currency is applied to the invoice number as it comes. The client's own
   checks are what keeps the books right.
Nothing is stored unless every rule passes. Invoices keep their amounts in their own currency;
`Balance` on the wire is in the client's currency (documented: "in the client currency"),
converted with the invoice's exchange rate.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from sandbox import jsonpatch
from sandbox.filters import NumberFilter
from sandbox.problems import (
    DuplicateVoucher,
    LockDateViolation,
    NotFound,
    Problem,
    VoucherRejected,
)
from sandbox.records import (
    Application,
    ClientSummary,
    CustomerRecord,
    GeneralLedgerAccount,
    InvoiceRecord,
    LedgerEntry,
    OpenCustomerEntry,
    OpenItem,
    ProjectRecord,
    VoucherDraft,
    VoucherRecord,
)

ZERO = Decimal(0)
_CUSTOMER_PATCH = {
    "Name": jsonpatch.PatchableField("name", jsonpatch.plain_str),
    "IsArchived": jsonpatch.PatchableField("is_archived", jsonpatch.strict_bool),
    "ExternalNumber": jsonpatch.PatchableField("external_number", jsonpatch.optional_int),
}
_PROJECT_PATCH = {
    "DenyTimeTracking": jsonpatch.PatchableField("deny_time_tracking", jsonpatch.strict_bool),
    "Name": jsonpatch.PatchableField("name", jsonpatch.plain_str),
    "IsActive": jsonpatch.PatchableField("is_active", jsonpatch.strict_bool),
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _pick(index: dict[int, Any], wanted: NumberFilter | None, key: Callable[[Any], int]) -> list[Any]:
    """Records matching a number filter, sorted by that number; dict lookups for plain lists."""
    if wanted is None:
        found = list(index.values())
    elif wanted.only_values:
        found = [index[n] for n in wanted.values if n in index]
    else:
        found = [r for n, r in index.items() if n in wanted]
    return sorted(found, key=key)


class ClientLedger:
    def __init__(self, client_key: str, lock_date: date | None = None, clock: Callable[[], datetime] = utc_now,
                 *, unique_references: bool = True):
        self.client_key = client_key
        self.unique_references = unique_references
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_date = lock_date
        self._accounts: dict[int, GeneralLedgerAccount] = {}
        self._customers: dict[int, CustomerRecord] = {}  # by number
        self._customer_by_id: dict[int, int] = {}
        self._customer_by_subledger: dict[int, int] = {}
        self._projects: dict[int, ProjectRecord] = {}  # by id
        self._invoices: dict[int, InvoiceRecord] = {}  # by invoice number
        self._vouchers: list[VoucherRecord] = []
        self._voucher_by_ref: dict[str, VoucherRecord] = {}
        self._open_entries: list[OpenCustomerEntry] = []
        self._next_voucher_no = 1

    # -- seeding -------------------------------------------------------------------------
    def add_account(self, account: GeneralLedgerAccount) -> None:
        with self._lock:
            self._accounts[account.id] = account

    def add_customer(self, customer: CustomerRecord) -> None:
        with self._lock:
            self._customers[customer.number] = customer
            self._customer_by_id[customer.id] = customer.number
            self._customer_by_subledger[customer.subledger_account_id] = customer.number

    def add_project(self, customer_no: int | None, name: str, *, deny_time_tracking: bool = False,
                    project_id: int | None = None, code: str | None = None) -> ProjectRecord:
        with self._lock:
            customer = self._customers.get(customer_no) if customer_no is not None else None
            if customer_no is not None and customer is None:
                raise NotFound(f"Customer with number {customer_no} not found.")
            new_id = project_id if project_id is not None else max(self._projects, default=0) + 1
            now = self._clock()
            project = ProjectRecord(
                id=new_id, code=code or str(new_id), name=name, customer_id=customer.id if customer else None,
                customer_no=customer_no, deny_time_tracking=deny_time_tracking, created=now, last_changed=now,
            )
            self._projects[new_id] = project
            return project

    def add_invoice(self, invoice: InvoiceRecord) -> None:
        with self._lock:
            self._invoices[invoice.invoice_no] = invoice
            self._next_voucher_no = max(self._next_voucher_no, invoice.voucher_no + 1)

    def add_new_invoice(self, invoice_no: int, customer_no: int, total: Decimal, *, currency_code: str = "NOK",
                        exchange_rate: Decimal = Decimal(1), voucher_date: date, is_reversed: bool = False) -> InvoiceRecord:
        """A new outgoing invoice (the control route's; seeding uses `add_invoice`)."""
        with self._lock:
            customer = self._customers.get(customer_no)
            if customer is None:
                raise NotFound(f"Customer with number {customer_no} not found.")
            if invoice_no in self._invoices:
                raise Problem(f"Invoice {invoice_no} exists already.", status=409, title="Conflict")
            invoice = InvoiceRecord(
                id=uuid.uuid5(uuid.NAMESPACE_URL, f"{self.client_key}/invoice/{invoice_no}"), invoice_no=invoice_no,
                customer_id=customer.id, customer_no=customer_no, total_amount=total, opening_balance=total,
                voucher_date=voucher_date, due_date=None, voucher_no=self._next_voucher_no, currency_code=currency_code,
                exchange_rate=exchange_rate, is_reversed=is_reversed)
            self.add_invoice(invoice)
            return invoice

    def reverse_invoice(self, invoice_no: int) -> InvoiceRecord:
        with self._lock:
            invoice = self._invoices.get(invoice_no)
            if invoice is None:
                raise NotFound(f"Invoice {invoice_no} not found.")
            reversed_ = replace(invoice, is_reversed=True)
            self._invoices[invoice_no] = reversed_
            return reversed_

    # -- settings ------------------------------------------------------------------------
    @property
    def lock_date(self) -> date | None:
        return self._lock_date

    def set_lock_date(self, lock_date: date | None) -> None:
        with self._lock:
            self._lock_date = lock_date

    # -- queries -------------------------------------------------------------------------
    def accounts(self, account_nos: NumberFilter | None = None) -> list[GeneralLedgerAccount]:
        with self._lock:
            by_no = {a.account_no: a for a in self._accounts.values()}
            return _pick(by_no, account_nos, key=lambda a: a.account_no)

    def customers(self, numbers: NumberFilter | None = None,
                  external_numbers: NumberFilter | None = None) -> list[CustomerRecord]:
        with self._lock:
            found = _pick(self._customers, numbers, key=lambda c: c.number)
        if external_numbers is not None:
            found = [c for c in found if c.external_number in external_numbers]
        return found

    def customer(self, customer_id: int) -> CustomerRecord:
        with self._lock:
            number = self._customer_by_id.get(customer_id)
            if number is None:
                raise NotFound(f"Customer with id = {customer_id} not found.")
            return self._customers[number]

    def projects(self, customer_nos: NumberFilter | None = None, created_after: datetime | None = None) -> list[ProjectRecord]:
        with self._lock:
            found = sorted(self._projects.values(), key=lambda p: p.id)
        if customer_nos is not None:
            found = [p for p in found if p.customer_no in customer_nos]
        if created_after is not None:
            found = [p for p in found if p.created is not None and p.created > created_after]
        return found

    def project(self, project_id: int) -> ProjectRecord:
        project = self._projects.get(project_id)
        if project is None:
            raise NotFound(f"Project with id = {project_id} not found.")
        return project

    def invoices(self, invoice_nos: NumberFilter | None = None, customer_nos: NumberFilter | None = None,
                 only_unpaid: bool = False) -> list[InvoiceRecord]:
        with self._lock:
            found = _pick(self._invoices, invoice_nos, key=lambda i: i.invoice_no)
        if customer_nos is not None:
            found = [i for i in found if i.customer_no in customer_nos]
        if only_unpaid:
            found = [i for i in found if i.balance != ZERO]
        return found

    def open_items(self, on: date, invoice_nos: NumberFilter | None = None,
                   customer_nos: NumberFilter | None = None) -> list[OpenItem]:
        with self._lock:
            return self._open_items(on, invoice_nos, customer_nos)

    def _open_items(self, on: date, invoice_nos: NumberFilter | None, customer_nos: NumberFilter | None) -> list[OpenItem]:
        items = []
        for inv in self.invoices(invoice_nos, customer_nos):
            balance = inv.balance_at(on)
            if inv.voucher_date <= on and not inv.is_reversed and balance != ZERO:
                items.append(OpenItem(
                    id=10_000_000 + inv.invoice_no, voucher_id=inv.id, voucher_no=inv.voucher_no,
                    voucher_type="OutgoingInvoice", customer_id=inv.customer_id, customer_no=inv.customer_no,
                    customer_name=self._customers[inv.customer_no].name, invoice_no=str(inv.invoice_no),
                    posting_date=inv.voucher_date, voucher_date=inv.voucher_date, due_date=inv.due_date,
                    amount=inv.in_client_currency(inv.total_amount), balance=inv.in_client_currency(balance),
                    currency_code=inv.currency_code, external_import_reference=None,
                ))
        if invoice_nos is None:
            for e in self._open_entries:
                if e.posting_date <= on and (customer_nos is None or e.customer_no in customer_nos):
                    items.append(OpenItem(
                        id=e.id, voucher_id=e.voucher_id, voucher_no=e.voucher_no, voucher_type="BankJournal",
                        customer_id=e.customer_id, customer_no=e.customer_no,
                        customer_name=self._customers[e.customer_no].name, invoice_no=None,
                        posting_date=e.posting_date, voucher_date=e.voucher_date, due_date=None, amount=e.amount,
                        balance=e.balance, currency_code=e.currency_code,
                        external_import_reference=e.external_import_reference,
                    ))
        return items

    def vouchers(self) -> list[VoucherRecord]:
        with self._lock:
            return list(self._vouchers)

    def voucher(self, voucher_id: uuid.UUID) -> VoucherRecord:
        for v in self.vouchers():
            if v.id == voucher_id:
                return v
        raise NotFound(f"Bank voucher with id = {voucher_id} not found.")

    def summary(self) -> ClientSummary:
        with self._lock:
            invoices = list(self._invoices.values())
            return ClientSummary(
                client_key=self.client_key, customers=len(self._customers), projects=len(self._projects),
                invoices=len(invoices), unpaid_invoices=sum(1 for i in invoices if i.balance != ZERO),
                vouchers=len(self._vouchers), invoice_balance_sum=sum((i.balance for i in invoices), ZERO),
                open_entry_balance_sum=sum((e.balance for e in self._open_entries), ZERO),
                lock_date=self._lock_date, accounts={a.account_no: a.id for a in self._accounts.values()},
            )

    # -- updates -------------------------------------------------------------------------
    def patch_customer(self, customer_id: int, operations: Any) -> CustomerRecord:
        with self._lock:
            current = self.customer(customer_id)
            changes = jsonpatch.patch_changes(operations, _CUSTOMER_PATCH, current)
            if changes.get("is_archived") and not current.is_archived:
                owed = self._customer_balance(current.number)
                if owed != ZERO:
                    raise Problem(f"Customer {current.number} cannot be archived: it has a ledger balance of {owed}.",
                                  title="Customer validation error(s)")
            updated = replace(current, last_changed=self._clock(), **changes)
            self._customers[current.number] = updated
            return updated

    def patch_project(self, project_id: int, operations: Any) -> ProjectRecord:
        with self._lock:
            current = self.project(project_id)
            changes = jsonpatch.patch_changes(operations, _PROJECT_PATCH, current)
            updated = replace(current, last_changed=self._clock(), **changes)
            self._projects[project_id] = updated
            return updated

    def post_bank_voucher(self, draft: VoucherDraft) -> VoucherRecord:
        with self._lock:
            ref = draft.external_import_reference
            if ref and self.unique_references and ref in self._voucher_by_ref:
                existing = self._voucher_by_ref[ref]
                raise DuplicateVoucher(
                    f"A voucher with ExternalImportReference '{ref}' already exists on the client "
                    f"(voucher no {existing.voucher_no}, id {existing.id}).")
            self._check_lines(draft)
            voucher = VoucherRecord(id=uuid.uuid4(), voucher_no=self._next_voucher_no, draft=draft, created=self._clock())
            invoice_updates, open_entries = self._match(draft, voucher)
            self._next_voucher_no += 1
            self._invoices.update(invoice_updates)
            self._open_entries.extend(open_entries)
            self._vouchers.append(voucher)
            if ref:
                self._voucher_by_ref.setdefault(ref, voucher)
            return voucher

    # -- rules ---------------------------------------------------------------------------
    def _customer_balance(self, customer_no: int) -> Decimal:
        owed = sum((i.balance for i in self._invoices.values() if i.customer_no == customer_no), ZERO)
        return owed + sum((e.balance for e in self._open_entries if e.customer_no == customer_no), ZERO)

    def _check_lines(self, draft: VoucherDraft) -> None:
        if not draft.lines:
            raise VoucherRejected("The voucher has no lines (VoucherLines).")
        for n, line in enumerate(draft.lines, start=1):
            if line.currency_amount == ZERO:
                raise VoucherRejected(f"Line {n}: CurrencyAmount must be a positive or negative number, not 0.")
            if line.account_id not in self._accounts and line.account_id not in self._customer_by_subledger:
                raise VoucherRejected(f"Line {n}: account id {line.account_id} was not found on the client "
                                      "(neither a general ledger account nor a sub-ledger account).")
            if self._lock_date is not None and line.posting_date <= self._lock_date:
                raise LockDateViolation(f"Line {n}: PostingDate {line.posting_date} is on or before the lock date "
                                        f"{self._lock_date} of the client; the period is locked.")
        total = sum((line.currency_amount for line in draft.lines), ZERO)
        if total != ZERO:
            raise VoucherRejected(f"The voucher does not balance: the lines sum to {total} {draft.currency_code}; "
                                  "they must sum to 0.")

    def _match(self, draft: VoucherDraft, voucher: VoucherRecord) -> tuple[dict[int, InvoiceRecord], list[OpenCustomerEntry]]:
        """Work out every invoice change and open entry first; raise before anything is stored."""
        invoices: dict[int, InvoiceRecord] = {}
        entries: list[OpenCustomerEntry] = []
        for line in draft.lines:
            customer_no = self._customer_by_subledger.get(line.account_id)
            if customer_no is None:
                continue
            customer = self._customers[customer_no]
            left_open = line.currency_amount
            text = (line.invoice_no or "").strip()
            number = int(text) if text.isdigit() and len(text) < 19 else None
            invoice = (invoices.get(number) or self._invoices.get(number)) if number is not None else None
            if invoice is not None:
                applied = ZERO
                if line.currency_amount < ZERO and invoice.balance > ZERO:
                    applied = min(-line.currency_amount, invoice.balance)  # money received
                elif line.currency_amount > ZERO and invoice.balance < invoice.opening_balance:
                    applied = -min(line.currency_amount, invoice.opening_balance - invoice.balance)  # given back
                if applied != ZERO:
                    invoices[invoice.invoice_no] = replace(
                        invoice, balance_last_changed=voucher.created,
                        applications=invoice.applications + (Application(voucher.id, line.posting_date, applied),))
                    left_open = line.currency_amount + applied
            if left_open != ZERO:
                entries.append(OpenCustomerEntry(
                    id=20_000_000 + len(self._open_entries) + len(entries), customer_id=customer.id,
                    customer_no=customer_no, voucher_id=voucher.id, voucher_no=voucher.voucher_no,
                    posting_date=line.posting_date, voucher_date=draft.voucher_date, amount=line.currency_amount,
                    balance=left_open, currency_code=line.currency_code or draft.currency_code,
                    external_import_reference=draft.external_import_reference, created=voucher.created,
                    invoice_no=text or None,
                ))
        return invoices, entries

    def statement(self, posted_from: date, posted_to: date, customer_nos: NumberFilter | None = None) -> list[LedgerEntry]:
        """Customer sub-ledger transactions posted in [from, to] (`/Customerledger/Statement`)."""
        with self._lock:
            out = []
            for voucher in self._vouchers:
                for line in voucher.draft.lines:
                    customer_no = self._customer_by_subledger.get(line.account_id)
                    if customer_no is None or not posted_from <= line.posting_date <= posted_to:
                        continue
                    if customer_nos is not None and customer_no not in customer_nos:
                        continue
                    out.append(LedgerEntry(voucher_id=voucher.id, voucher_no=voucher.voucher_no, customer_no=customer_no,
                                           posting_date=line.posting_date, amount=line.currency_amount,
                                           currency_code=line.currency_code or voucher.draft.currency_code,
                                           invoice_no=line.invoice_no,
                                           external_import_reference=voucher.draft.external_import_reference))
            return out
