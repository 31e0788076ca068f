"""New payments arriving in Visma while the chaos goes on: a thread that inserts `CustTr` payment
rows into the company database continuously, the way Visma's own clients write them.

- Small transactions: each is one journal (a new `JNo`) of 1 to 3 payments (`EntNo` 1..n),
  held open for up to 0.3 s before the commit (a person's client posting a bank statement line).
- Realistic change stamps: `ChDt`/`ChTm`/`ChTmms` (and `CreDt`/`CreTm`) are Oslo local time at the
  moment of the INSERT, not of the commit, as Visma stamps them.
- Valid payments: voucher type 3, negative amount, voucher date today, against an invoice of a
  seeded customer, never more than the invoice still owes in PowerOffice (so every balance can
  be checked to the cent at the end).
- A database that goes away (the hard stop) is waited for: the connection is opened again, and a
  transaction whose commit had no answer is looked up (its `JNo`) before it is written again, so
  every row is inserted exactly once and `inserted` only ever lists committed rows.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Callable
from zoneinfo import ZoneInfo

import pyodbc

from consumer.payments import external_import_reference
from devstack.dataset import VOUCHER_TYPE_PAYMENT
from devstack.visma_seed import CUSTTR_INSERT_COLUMNS

OSLO = ZoneInfo("Europe/Oslo")
CENT = Decimal("0.01")
MIN_LEFT = Decimal("100.00")  # invoices owing less than this are not paid any more


@dataclass
class OpenInvoice:
    invoice_no: int
    cust_no: int
    left: Decimal  # what PowerOffice will still show owing after the payments inserted so far


class Inserter(threading.Thread):
    def __init__(self, connection_string: str, company_no: int, invoices: list[OpenInvoice], *, first_jno: int,
                 rate: float, seed: int, on_inserted: Callable[[list[str], float], None]):
        super().__init__(name="chaos-inserter", daemon=True)
        self.connection_string = connection_string
        self.company_no = company_no
        self.invoices = [i for i in invoices if i.left >= MIN_LEFT]
        self.rng = random.Random(seed)
        self.rate = rate  # payments per second; 0 pauses
        self.on_inserted = on_inserted
        self.next_jno = first_jno
        self.first_jno = first_jno
        self.vo_no = 900_000
        self.inserted = 0
        self.failures = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._conn: pyodbc.Connection | None = None
        placeholders = ", ".join("?" for _ in CUSTTR_INSERT_COLUMNS)
        columns = ", ".join(f'"{c}"' for c in CUSTTR_INSERT_COLUMNS)
        self._sql = f'INSERT INTO "CustTr" ({columns}) VALUES ({placeholders})'

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self._close()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.error = exc

    def _run(self) -> None:
        budget = 0.0  # payments owed to the schedule
        last = time.monotonic()
        pending: list[tuple[OpenInvoice, Decimal]] | None = None  # a journal whose commit had no answer
        while not self.stopping.is_set():
            now = time.monotonic()
            budget = min(budget + (now - last) * self.rate, 5.0)
            last = now
            if pending is None and budget < 1.0:
                self.stopping.wait(0.05)
                continue
            journal = pending or self._plan()
            if not journal:
                self.stopping.wait(0.5)  # every invoice paid: nothing left to insert
                continue
            jno = self.next_jno
            try:
                if pending is None or not self._exists(jno):  # (else: that commit went through before the line dropped)
                    self._insert(jno, journal)
            except pyodbc.Error:
                self.failures += 1
                self._close()
                pending = journal
                self.stopping.wait(0.5)
                continue
            pending = None
            self.next_jno += 1
            budget -= len(journal)
            self.inserted += len(journal)
            self.on_inserted([external_import_reference(self.company_no, jno, e) for e in range(1, len(journal) + 1)],
                             time.monotonic())

    def _plan(self) -> list[tuple[OpenInvoice, Decimal]]:
        """1 to 3 payments, each on an invoice that still owes enough."""
        self.invoices = [i for i in self.invoices if i.left >= MIN_LEFT]
        if not self.invoices:
            return []
        journal = []
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            invoice = self.rng.choice(self.invoices)
            top = min(invoice.left * Decimal("0.4"), Decimal(5000))
            amount = Decimal(self.rng.uniform(10, float(top))).quantize(CENT)
            if not Decimal(0) < amount <= invoice.left:
                continue
            invoice.left -= amount
            journal.append((invoice, amount))
        return journal

    def _connection(self) -> pyodbc.Connection:
        if self._conn is None:
            self._conn = pyodbc.connect(self.connection_string, autocommit=False, timeout=5)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except pyodbc.Error:
                pass
            self._conn = None

    def _exists(self, jno: int) -> bool:
        conn = self._connection()
        found = conn.execute('SELECT COUNT(*) FROM "CustTr" WHERE "JNo" = ?', jno).fetchone()[0]
        conn.commit()
        return found > 0

    def _insert(self, jno: int, journal) -> None:
        conn = self._connection()
        now = datetime.now(OSLO)
        day = now.year * 10_000 + now.month * 100 + now.day
        hhmm = now.hour * 100 + now.minute
        ms = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
        rows = []
        for entno, (invoice, amount) in enumerate(journal, start=1):
            self.vo_no += 1
            am = -amount
            rows.append((jno, entno, invoice.cust_no, self.vo_no, day, VOUCHER_TYPE_PAYMENT,
                         f"Innbetaling {invoice.invoice_no}", am, str(invoice.invoice_no), 0, am, 0,
                         day, hhmm, day, hhmm, ms))
        cursor = conn.cursor()
        cursor.executemany(self._sql, rows)
        cursor.close()
        hold = self.rng.uniform(0.0, 0.3)
        if hold:
            time.sleep(hold)
        conn.commit()
