"""Create a Visma company database (CustTr, Actor) and fill it from the dataset generator."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Iterable, Iterator

from devstack.dataset import VOUCHER_TYPE_PAYMENT, CustTrRow, DatasetSpec, customers, custtr_rows
from producer.rows import RowReader
from vb2po.visma.db import VismaDatabase
from vb2po.visma.payments import CurrencyBook, PaymentRow, PaymentRule
from vb2po.visma.tables import ACTOR, CUSTTR, Table

SQLITE_DRIVER = "SQLite3"
POSTGRES_DRIVER = "PostgreSQL Unicode"

CUSTTR_INSERT_COLUMNS = (
    "JNo", "EntNo", "CustNo", "VoNo", "VoDt", "VoTp", "Txt", "Am", "InvoNo", "Cur", "CurAm",
    "DueDt", "CreDt", "CreTm", "ChDt", "ChTm", "ChTmms",
)


def payment_row(row: CustTrRow) -> PaymentRow:
    """A dataset row as the producer selects it (company currency: no currency number)."""
    return PaymentRow(row.jno, row.entno, row.cust_no, row.vo_no, row.vo_dt, row.vo_tp, row.txt, row.am, row.invo_no,
                      row.ch_dt, 0, row.am, row.ch_tmms)


def event_reader(company_no: int, zone, lookback: date = date(2000, 1, 1), currency: str = "NOK") -> RowReader:
    """The producer's row -> event conversion for a dataset company (default payment rule)."""
    rule = PaymentRule((VOUCHER_TYPE_PAYMENT,), (VOUCHER_TYPE_PAYMENT,), lookback)
    return RowReader(company_no, rule, CurrencyBook(currency, {}, None), "ChTmms", zone)


def sqlite_connection_string(path: Path) -> str:
    # Timeout: wait for a lock instead of failing at once when producer and consumer share a file;
    # WAL: readers never block the marker writer.
    return f"Driver={SQLITE_DRIVER};Database={path};Timeout=10000;JournalMode=WAL"


def create_tables(db: VismaDatabase, *, with_poll_index: bool = True, minute_precision: bool = False) -> None:
    """CustTr and Actor; `minute_precision`: a CustTr without `ChTmms`, changes stamped to the
    minute by `ChTm` alone (as some Visma tables are)."""
    custtr = Table(CUSTTR.name, tuple(c for c in CUSTTR.columns if c.name != "ChTmms"), CUSTTR.key) \
        if minute_precision else CUSTTR
    for table in (custtr, ACTOR):
        db.execute(db.dialect.create_table(table))
    if with_poll_index:
        time_column = "ChTm" if minute_precision else "ChTmms"
        db.execute(db.dialect.create_index("vb2po_CustTr_change", "CustTr", ["ChDt", time_column, "JNo", "EntNo"]))


def custtr_insert_sql(db: VismaDatabase, *, minute_precision: bool = False) -> str:
    d = db.dialect
    names = CUSTTR_INSERT_COLUMNS[:-1] if minute_precision else CUSTTR_INSERT_COLUMNS
    cols = ", ".join(d.quote(c) for c in names)
    marks = ", ".join("?" for _ in names)
    return f"INSERT INTO {d.table('CustTr')} ({cols}) VALUES ({marks})"


def custtr_values(row: CustTrRow, *, minute_precision: bool = False) -> tuple:
    values = (
        row.jno, row.entno, row.cust_no, row.vo_no, row.vo_dt, row.vo_tp, row.txt, row.am,
        row.invo_no, 0, row.am, row.due_dt, row.cre_dt, row.cre_tm, row.ch_dt, row.ch_tm, row.ch_tmms,
    )
    return values[:-1] if minute_precision else values


def insert_custtr(db: VismaDatabase, rows: Iterable[CustTrRow], *, batch: int = 2000, minute_precision: bool = False) -> int:
    sql = custtr_insert_sql(db, minute_precision=minute_precision)
    count = 0
    for chunk in chunks((custtr_values(r, minute_precision=minute_precision) for r in rows), batch):
        db.executemany(sql, chunk)
        count += len(chunk)
    return count


def insert_actors(db: VismaDatabase, spec: DatasetSpec) -> int:
    d = db.dialect
    cols = ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt", "CreDt", "ChDt", "ChTm", "ChTmms")
    sql = (
        f"INSERT INTO {d.table('Actor')} ({', '.join(d.quote(c) for c in cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)})"
    )
    values = [
        (c.act_no, c.cust_no, c.name, int(c.credit_blocked), c.credit_limit, 20250101, 20250101, 800, 800 * 60_000)
        for c in customers(spec)
    ]
    for chunk in chunks(iter(values), 2000):
        db.executemany(sql, chunk)
    return len(values)


def seed_company(db: VismaDatabase, spec: DatasetSpec, *, progress: bool = False, minute_precision: bool = False) -> int:
    """Tables plus the dataset's actors and CustTr rows; returns the CustTr row count."""
    create_tables(db, minute_precision=minute_precision)
    insert_actors(db, spec)
    total = 0
    for chunk in chunks(iter(custtr_rows(spec)), 20_000):
        total += insert_custtr(db, chunk, minute_precision=minute_precision)
        if progress:
            print(f"  company {spec.company_no}: {total:,}/{spec.size:,} CustTr rows", file=sys.stderr)
    return total


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Lists of up to `size` items, so inserts go in batches without holding everything."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
