"""Deterministic test and demo data: one Visma company's customers, invoices and ledger rows.

Pure: no I/O. The same (seed, size) always yields the same data, so the Visma stand-in
(`devstack.visma_seed`) and the PowerOffice sandbox (`sandbox`) can be seeded from it
independently and still agree on customers, invoices and amounts.

Rows are produced lazily, so a 1,000,000-row `CustTr` streams in flat memory.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterator

from vb2po.visma.clock import yyyymmdd

# Voucher types (`CustTr.VoTp`) used by the generator. In a real company these are
# configured per company; the payment rule names the payment types as a setting.
VOUCHER_TYPE_INVOICE = 1
VOUCHER_TYPE_CREDIT_NOTE = 2
VOUCHER_TYPE_PAYMENT = 3

CENT = Decimal("0.01")
FIRST_CUSTOMER_NO = 10000
FIRST_INVOICE_NO = 100000
ROWS_PER_JOURNAL = 50


@dataclass(frozen=True)
class Customer:
    cust_no: int
    act_no: int
    name: str
    credit_blocked: bool
    credit_limit: Decimal


@dataclass(frozen=True)
class Project:
    """A PowerOffice project of a customer (PowerOffice side only)."""

    project_no: int
    cust_no: int
    name: str
    deny_time_tracking: bool  # denied for a reason of its own, before vb2po ever ran


@dataclass(frozen=True)
class CustTrRow:
    """One `CustTr` row with Visma's column semantics (dates yyyymmdd, times hhmm)."""

    jno: int
    entno: int
    cust_no: int
    vo_no: int
    vo_dt: int
    vo_tp: int
    txt: str
    am: Decimal
    invo_no: str
    cur: str
    due_dt: int
    cre_dt: int
    cre_tm: int
    ch_dt: int
    ch_tm: int
    ch_tmms: int

    @property
    def is_payment(self) -> bool:
        return self.vo_tp == VOUCHER_TYPE_PAYMENT


@dataclass(frozen=True)
class Invoice:
    invoice_no: int
    cust_no: int
    total: Decimal
    credited: Decimal  # sum of credit notes, positive
    paid: Decimal  # sum of payments in Visma, positive
    voucher_date: date
    due_date: date

    @property
    def balance_before_sync(self) -> Decimal:
        """What PowerOffice shows outstanding before any Visma payment is registered."""
        return self.total - self.credited

    @property
    def outstanding(self) -> Decimal:
        """What Visma shows outstanding: the PowerOffice balance once every payment is applied."""
        return self.total - self.credited - self.paid


@dataclass(frozen=True)
class DatasetSpec:
    size: int = 100  # number of CustTr rows, 10 .. 1,000,000
    seed: int = 42
    company_no: int = 1
    first_date: date = date(2025, 12, 1)
    last_date: date = date(2026, 11, 26)
    blocked_share: float = 0.1
    unmatched_payment_share: float = 0.0  # payments without invoice number (bad rows)

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 1_000_000:
            raise ValueError(f"size must be 1..1,000,000 CustTr rows, got {self.size}")
        if self.first_date > self.last_date:
            raise ValueError("first_date must not be after last_date")

    @property
    def customer_count(self) -> int:
        return max(3, self.size // 20)


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return (Decimal(rng.randint(low * 100, high * 100)) * CENT).quantize(CENT)


def customers(spec: DatasetSpec) -> list[Customer]:
    rng = random.Random(f"{spec.seed}:customers")
    out = []
    for i in range(spec.customer_count):
        out.append(
            Customer(
                cust_no=FIRST_CUSTOMER_NO + i,
                act_no=1 + i,
                name=f"Kunde {FIRST_CUSTOMER_NO + i} AS",
                credit_blocked=rng.random() < spec.blocked_share,
                credit_limit=_money(rng, 10_000, 500_000),
            )
        )
    return out


def projects(spec: DatasetSpec) -> list[Project]:
    """One to three PowerOffice projects per customer; a few already denied for other reasons."""
    rng = random.Random(f"{spec.seed}:projects")
    out = []
    number = 1
    for cust in customers(spec):
        for _ in range(rng.randint(1, 3)):
            out.append(
                Project(
                    project_no=number,
                    cust_no=cust.cust_no,
                    name=f"Prosjekt {number}",
                    deny_time_tracking=rng.random() < 0.1,
                )
            )
            number += 1
    return out


@dataclass
class _Block:
    invoice: Invoice
    rows: list[CustTrRow] = field(default_factory=list)


def _blocks(spec: DatasetSpec) -> Iterator[_Block]:
    """Invoices in order, each with its own rows (invoice, credit notes, payments)."""
    rng = random.Random(f"{spec.seed}:ledger")
    custs = customers(spec)
    span_days = (spec.last_date - spec.first_date).days
    remaining = spec.size
    row_index = 0
    invoice_no = FIRST_INVOICE_NO
    vo_no = 1

    def next_row(**fields) -> CustTrRow:
        nonlocal row_index, vo_no
        jno, entno = 1 + row_index // ROWS_PER_JOURNAL, 1 + row_index % ROWS_PER_JOURNAL
        row_index += 1
        vo_no += 1
        when: date = fields.pop("when")
        minute = rng.randint(7 * 60, 17 * 60)  # office hours: many rows share one minute
        ms = minute * 60_000 + rng.randint(0, 59_999)
        return CustTrRow(
            jno=jno, entno=entno, vo_no=vo_no, vo_dt=yyyymmdd(when), cur="NOK",
            cre_dt=yyyymmdd(when), cre_tm=(minute // 60) * 100 + minute % 60,
            ch_dt=yyyymmdd(when), ch_tm=(minute // 60) * 100 + minute % 60, ch_tmms=ms,
            **fields,
        )

    while remaining > 0:
        cust = custs[rng.randrange(len(custs))]
        inv_date = spec.first_date + timedelta(days=rng.randint(0, max(0, span_days - 1)))
        due = inv_date + timedelta(days=14)
        total = _money(rng, 500, 50_000)
        planned: list[tuple[str, Decimal, date]] = []
        if rng.random() < 0.1:
            planned.append(("credit", (total * Decimal(rng.choice(["0.1", "0.25", "0.5"]))).quantize(CENT), inv_date))
        left = total - sum((a for _, a, _ in planned), Decimal(0))
        roll = rng.random()
        pay_date = min(spec.last_date, inv_date + timedelta(days=rng.randint(1, 30)))
        if roll < 0.55:
            planned.append(("payment", left, pay_date))  # paid in full
        elif roll < 0.85:
            part = (left * Decimal(rng.choice(["0.3", "0.5", "0.7"]))).quantize(CENT)
            planned.append(("payment", part, pay_date))
            if rng.random() < 0.5:
                later = min(spec.last_date, pay_date + timedelta(days=rng.randint(1, 20)))
                planned.append(("payment", left - part, later))
        # else: not paid yet

        block_rows = min(remaining, 1 + len(planned))
        remaining -= block_rows
        rows = [
            next_row(
                cust_no=cust.cust_no, vo_tp=VOUCHER_TYPE_INVOICE, txt=f"Faktura {invoice_no}",
                am=total, invo_no=str(invoice_no), due_dt=yyyymmdd(due), when=inv_date,
            )
        ]
        credited = paid = Decimal(0)
        for kind, amount, when in planned[: block_rows - 1]:
            if kind == "credit":
                credited += amount
                rows.append(next_row(
                    cust_no=cust.cust_no, vo_tp=VOUCHER_TYPE_CREDIT_NOTE, txt=f"Kreditnota til {invoice_no}",
                    am=-amount, invo_no=str(invoice_no), due_dt=yyyymmdd(due), when=when,
                ))
            else:
                unmatched = rng.random() < spec.unmatched_payment_share
                if not unmatched:
                    paid += amount
                rows.append(next_row(
                    cust_no=cust.cust_no, vo_tp=VOUCHER_TYPE_PAYMENT, txt=f"Innbetaling {invoice_no}",
                    am=-amount, invo_no="" if unmatched else str(invoice_no), due_dt=0, when=when,
                ))
        yield _Block(
            Invoice(invoice_no, cust.cust_no, total, credited, paid, inv_date, due), rows
        )
        invoice_no += 1


def custtr_rows(spec: DatasetSpec) -> Iterator[CustTrRow]:
    for block in _blocks(spec):
        yield from block.rows


def invoices(spec: DatasetSpec) -> Iterator[Invoice]:
    for block in _blocks(spec):
        yield block.invoice


def payment_rows(spec: DatasetSpec, *, on_or_after: date | None = None) -> Iterator[CustTrRow]:
    """Payments with an invoice number, optionally from a lookback date on (what vb2po must apply)."""
    floor = yyyymmdd(on_or_after) if on_or_after else 0
    for row in custtr_rows(spec):
        if row.is_payment and row.invo_no and row.vo_dt >= floor:
            yield row
