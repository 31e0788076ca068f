"""Fill a ClientLedger from the deterministic dataset, so Visma stand-in and sandbox agree.

Ids are derived from numbers but deliberately differ from them (as in PowerOffice, where
a customer's `Id`, its `Number` and its `SubledgerAccountId` are three different values,
and a general-ledger account's `Id` is not its account number). A client that confuses
them gets "account not found" from the sandbox instead of silently working.
"""
from __future__ import annotations

import uuid
from datetime import date

from devstack.dataset import DatasetSpec, customers, invoices, projects
from sandbox.ledger import ClientLedger
from sandbox.records import CustomerRecord, GeneralLedgerAccount, InvoiceRecord

DEFAULT_LOCK_DATE = date(2025, 1, 1)
BANK_ACCOUNT_NO = 1920

CUSTOMER_ID_BASE = 7_000_000
SUBLEDGER_ACCOUNT_ID_BASE = 8_000_000
PROJECT_ID_BASE = 9_000_000
GL_ACCOUNT_ID_BASE = 6_000_000
_INVOICE_ID_NAMESPACE = uuid.UUID("5b7a0c1e-3d7f-4a52-9a3e-2f1c6d0b9e11")

CHART_OF_ACCOUNTS = {
    1500: "Kundefordringer",
    1920: "Bankinnskudd",
    1950: "Bankinnskudd for skattetrekk",
    7770: "Bank- og kortgebyrer",
}


def gl_account_id(account_no: int) -> int:
    return GL_ACCOUNT_ID_BASE + account_no


def customer_id(customer_no: int) -> int:
    return CUSTOMER_ID_BASE + customer_no


def subledger_account_id(customer_no: int) -> int:
    return SUBLEDGER_ACCOUNT_ID_BASE + customer_no


def invoice_id(client_key: str, invoice_no: int) -> uuid.UUID:
    return uuid.uuid5(_INVOICE_ID_NAMESPACE, f"{client_key}:{invoice_no}")


def seed_client(client_key: str, spec: DatasetSpec, lock_date: date | None = DEFAULT_LOCK_DATE) -> ClientLedger:
    """A ledger holding the dataset's customers, projects and invoices (balance before any sync)."""
    ledger = ClientLedger(client_key, lock_date=lock_date)
    for account_no, name in CHART_OF_ACCOUNTS.items():
        ledger.add_account(GeneralLedgerAccount(id=gl_account_id(account_no), account_no=account_no, name=name))
    for cust in customers(spec):
        ledger.add_customer(CustomerRecord(
            id=customer_id(cust.cust_no), number=cust.cust_no, name=cust.name,
            subledger_account_id=subledger_account_id(cust.cust_no),
        ))
    for proj in projects(spec):
        ledger.add_project(proj.cust_no, proj.name, deny_time_tracking=proj.deny_time_tracking,
                           project_id=PROJECT_ID_BASE + proj.project_no, code=str(proj.project_no))
    for voucher_no, inv in enumerate(invoices(spec), start=1):
        ledger.add_invoice(InvoiceRecord(
            id=invoice_id(client_key, inv.invoice_no), invoice_no=inv.invoice_no,
            customer_id=customer_id(inv.cust_no), customer_no=inv.cust_no, total_amount=inv.total,
            opening_balance=inv.balance_before_sync, voucher_date=inv.voucher_date, due_date=inv.due_date,
            voucher_no=voucher_no,
        ))
    return ledger
